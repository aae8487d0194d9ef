/**
 * The `eventsource-server/postgres` entry: a PostgreSQL table as the log every instance shares, so a client resumes on
 * any of them. It imports nothing: it takes a node-postgres `Pool` (and optionally a `Client` to `LISTEN` on) that the
 * application already has.
 * @module
 */
export {
  type PostgresListener,
  type PostgresLog,
  type PostgresLogOptions,
  type PostgresNotification,
  type PostgresPool,
  type PostgresPoolClient,
  type PostgresResult,
  postgresLog,
} from "./logs/postgres.ts";
