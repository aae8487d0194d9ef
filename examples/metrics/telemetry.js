// @ts-check
/**
 * The OpenTelemetry SDK for opentelemetry.js, loaded before it with `node --import`: a meter provider that prints
 * what was measured every 10 s. An app sends it to a collector instead, with the OTLP exporter
 * (`@opentelemetry/exporter-metrics-otlp-http`) in place of the console one.
 */
import { metrics } from "@opentelemetry/api";
import { ConsoleMetricExporter, MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";

const reader = new PeriodicExportingMetricReader({
  exporter: new ConsoleMetricExporter(),
  exportIntervalMillis: 10_000,
});
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
