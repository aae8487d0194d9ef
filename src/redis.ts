/**
 * The `eventsource-server/redis` entry: a Redis Stream as the log every instance shares, so a client resumes on any of
 * them. It imports nothing: it takes a node-redis, ioredis or Bun Redis client that the application already has.
 * @module
 */
export {
  type BunRedisClient,
  type IoRedisClient,
  type NodeRedisClient,
  type RedisClient,
  type RedisStreamLogOptions,
  redisStreamLog,
} from "./logs/redis.ts";
