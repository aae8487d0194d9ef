/** The package ships no types: it parses the Prometheus text format into the JSON prom2json writes. */
declare module "parse-prometheus-text-format" {
  export default function parsePrometheusTextFormat(text: string): unknown[];
}
