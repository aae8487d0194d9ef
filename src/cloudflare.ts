/**
 * The `eventsource-server/cloudflare` entry: a Durable Object's storage as the log of the object's own channel, so a
 * client resumes after the object restarts. It imports nothing, not even workerd's types: it takes the object's
 * `ctx.storage`.
 * @module
 */
export {
  type DurableObjectListRange,
  type DurableObjectLogOptions,
  type DurableObjectLogStorage,
  type DurableObjectLogTransaction,
  durableObjectLog,
} from "./logs/cloudflare.ts";
