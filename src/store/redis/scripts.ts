/**
 * The Redis Cluster engine's scripts (issue 16). Each runs on the slot of one top-level namespace
 * T (keys.ts): KEYS[1] is a key of T's (so the cluster routes the script there), ARGV[1] is T's
 * head `<prefix>{T}:`, from which the script builds the rest of T's keys:
 *
 *   head..'v:'..key   value            head..'k:'..ns   names of ns's own keys (ZSET, scores 0)
 *   head..'c'         subtree counts   head..'n:'..ns   names of ns's child namespaces
 *   head..'e'         T's keys with a TTL, scored by when they expire (ms, Redis's clock)
 *
 * Paths are unit-encoded (keys.ts), in which `^` (94) is never part of a longer character, so
 * scripts split paths on it bytewise.
 *
 * What a script cannot do is touch the root namespace's listings (another slot): it returns
 * flags and the engine applies them there (see engine.ts).
 *   ROOT_KEY_ADDED / ROOT_KEY_REMOVED     a key directly in the root appeared / went
 *   ROOT_NS_ADDED / ROOT_NS_REMOVED       T itself gained its first key / lost its last
 *
 * Every script also takes, as its last two ARGV, the change-events channel and the id of the
 * node that runs it, and publishes each change it makes there (see `publish`).
 *
 * Expiry: Redis drops an expired value itself; `purge` removes such keys from T's indexes and
 * counts, and every script that reads indexes or counts runs it first, so listings and counts
 * never include an expired key. It reports the keys it purged (the engine tells listeners).
 */
import { createHash } from 'node:crypto';
import { LUA_JS_NUMBER, LUA_JSON } from './lua.js';

export const ROOT_KEY_ADDED = 1;
export const ROOT_KEY_REMOVED = 2;
export const ROOT_NS_ADDED = 4;
export const ROOT_NS_REMOVED = 8;
/** A key was created / deleted (the root's key total follows; purged keys are counted apart). */
export const KEY_CREATED = 16;
export const KEY_DELETED = 32;

/** Most expired keys one script purges before doing its own work (the rest: next time). */
export const PURGE_BATCH = 1000;

const LIBRARY = `
local ROOT_KEY_ADDED, ROOT_KEY_REMOVED, ROOT_NS_ADDED, ROOT_NS_REMOVED = 1, 2, 4, 8
local KEY_CREATED, KEY_DELETED = 16, 32

-- Change events go to every node in the write's own script, so they follow the writes' order:
-- op, origin, key and value joined by newlines (keys hold no control character; JSON text no raw
-- newline).
-- The last two ARGV of every script are the events channel and the writing node's id.
local EVENTS, ORIGIN = ARGV[#ARGV - 1], ARGV[#ARGV]
local function publish(op, key, value)
  redis.call('PUBLISH', EVENTS, op .. '\\n' .. ORIGIN .. '\\n' .. key .. '\\n' .. (value or ''))
end

-- The parent path and last name of a path, or nil and the path for a top-level name.
local function split_last(path)
  local at = nil
  local i = 0
  while true do
    i = string.find(path, '^', i + 1, true)
    if i == nil then break end
    at = i
  end
  if at == nil then return nil, path end
  return string.sub(path, 1, at - 1), string.sub(path, at + 1)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Bookkeeping for a key that was just created: its namespace's index, the counts of every
-- namespace above it, and the child index of each namespace that just became non-empty.
local function added(head, key)
  local ns, leaf = split_last(key)
  if ns == nil then return ROOT_KEY_ADDED + KEY_CREATED end
  redis.call('ZADD', head .. 'k:' .. ns, 0, leaf)
  local flags = KEY_CREATED
  local path = ns
  while path ~= nil do
    local parent, name = split_last(path)
    if redis.call('HINCRBY', head .. 'c', path, 1) == 1 then
      if parent == nil then flags = bit.bor(flags, ROOT_NS_ADDED) else redis.call('ZADD', head .. 'n:' .. parent, 0, name) end
    end
    path = parent
  end
  return flags
end

-- The same for a key that was just removed (its value and expiry entry are already gone).
local function removed(head, key)
  local ns, leaf = split_last(key)
  if ns == nil then return ROOT_KEY_REMOVED end
  redis.call('ZREM', head .. 'k:' .. ns, leaf)
  local flags = 0
  local path = ns
  while path ~= nil do
    local parent, name = split_last(path)
    if redis.call('HINCRBY', head .. 'c', path, -1) <= 0 then
      redis.call('HDEL', head .. 'c', path)
      if parent == nil then flags = bit.bor(flags, ROOT_NS_REMOVED) else redis.call('ZREM', head .. 'n:' .. parent, name) end
    end
    path = parent
  end
  return flags
end

-- The same for several keys of one namespace at once (DROP): one call per index and count.
local function removed_many(head, ns, names)
  redis.call('ZREM', head .. 'k:' .. ns, unpack(names))
  local flags = 0
  local path = ns
  while path ~= nil do
    local parent, name = split_last(path)
    if redis.call('HINCRBY', head .. 'c', path, -#names) <= 0 then
      redis.call('HDEL', head .. 'c', path)
      if parent == nil then flags = bit.bor(flags, ROOT_NS_REMOVED) else redis.call('ZREM', head .. 'n:' .. parent, name) end
    end
    path = parent
  end
  return flags
end

-- Takes keys whose TTL has passed out of T's indexes and counts. Returns the flags and the keys.
local function purge(head, now)
  local due = redis.call('ZRANGEBYSCORE', head .. 'e', '-inf', now, 'LIMIT', 0, ${PURGE_BATCH})
  local flags = 0
  local gone = {}
  for _, key in ipairs(due) do
    -- EXISTS drops a value whose time has passed; one still there (clock edge) stays for next time.
    if redis.call('EXISTS', head .. 'v:' .. key) == 0 then
      redis.call('ZREM', head .. 'e', key)
      flags = bit.bor(flags, removed(head, key))
      gone[#gone + 1] = key
      publish('expire', key)
    end
  end
  return flags, gone
end
`;

/**
 * A script and its SHA-1 (EVALSHA first; EVAL when the node has not seen it). Redis runs a script's
 * whole text on every call, defining each local function again, so the JSON and number helpers
 * of lua.ts come only with the scripts that use them (INCR, CAS): they were a third of a SET's
 * time inside Redis (12.3 -> 8.5 µs a call, INFO commandstats on one server).
 */
export class Script {
  readonly sha: string;
  readonly lua: string;
  constructor(body: string) {
    const json = /\bjson_/.test(body) ? LUA_JSON : '';
    const number = /\bjs_number\b/.test(body) ? LUA_JS_NUMBER : '';
    this.lua = `${json}${number}${LIBRARY}\n${body}`;
    this.sha = createHash('sha1').update(this.lua).digest('hex');
  }
}

/**
 * SET. KEYS: value. ARGV: head, key, value, mode ('' | 'NX' | 'XX'), ttl ms ('' for none).
 * Returns {written (0/1), flags, purged...}.
 */
export const SET = new Script(`
local head, key, value, mode, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now = now_ms()
local flags, gone = purge(head, now)
local existed = redis.call('EXISTS', KEYS[1]) == 1
if (mode == 'NX' and existed) or (mode == 'XX' and not existed) then
  return {0, flags, unpack(gone)}
end
if ttl == '' then
  redis.call('SET', KEYS[1], value)
  redis.call('ZREM', head .. 'e', key)
else
  redis.call('SET', KEYS[1], value, 'PX', ttl)
  redis.call('ZADD', head .. 'e', now + tonumber(ttl), key)
end
if not existed then flags = bit.bor(flags, added(head, key)) end
publish('set', key, value)
return {1, flags, unpack(gone)}
`);

/** DEL. KEYS: value. ARGV: head, key. Returns {existed (0/1), flags, purged...}. */
export const DEL = new Script(`
local head, key = ARGV[1], ARGV[2]
local flags, gone = purge(head, now_ms())
if redis.call('DEL', KEYS[1]) == 0 then return {0, flags, unpack(gone)} end
redis.call('ZREM', head .. 'e', key)
flags = bit.bor(flags, removed(head, key), KEY_DELETED)
publish('del', key)
return {1, flags, unpack(gone)}
`);

/** EXPIRE. KEYS: value. ARGV: head, key, ttl ms. Returns {existed (0/1), flags, purged...}. */
export const EXPIRE = new Script(`
local head, key, ttl = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local flags, gone = purge(head, now)
if redis.call('PEXPIRE', KEYS[1], ttl) == 0 then return {0, flags, unpack(gone)} end
redis.call('ZADD', head .. 'e', now + tonumber(ttl), key)
return {1, flags, unpack(gone)}
`);

/** PERSIST. KEYS: value. ARGV: head, key. Returns {had a TTL (0/1), flags, purged...}. */
export const PERSIST = new Script(`
local head, key = ARGV[1], ARGV[2]
local flags, gone = purge(head, now_ms())
if redis.call('PERSIST', KEYS[1]) == 0 then return {0, flags, unpack(gone)} end
redis.call('ZREM', head .. 'e', key)
return {1, flags, unpack(gone)}
`);

/**
 * A page of a namespace's own key names or child names (KEYS[1] says which), after purging.
 * KEYS: the index. ARGV: head, start ('-' or '(' .. after), limit + 1.
 * Returns {flags, #purged, purged..., names...}.
 */
export const PAGE = new Script(`
local head, start, count = ARGV[1], ARGV[2], tonumber(ARGV[3])
local flags, gone = purge(head, now_ms())
local names = redis.call('ZRANGEBYLEX', KEYS[1], start, '+', 'LIMIT', 0, count)
local out = {flags, #gone}
for _, k in ipairs(gone) do out[#out + 1] = k end
for _, n in ipairs(names) do out[#out + 1] = n end
return out
`);

/** Keys in a namespace's subtree, after purging. KEYS: counts. ARGV: head, ns. Returns {count, flags, purged...}. */
export const COUNT = new Script(`
local head, ns = ARGV[1], ARGV[2]
local flags, gone = purge(head, now_ms())
local n = tonumber(redis.call('HGET', KEYS[1], ns) or '0')
return {n, flags, unpack(gone)}
`);

/** Outcomes of INCR beside success (the reply's first element). */
export const INCR_OK = 1;
export const INCR_WRONG_TYPE = 0;
export const INCR_OVERFLOW = -1;

/**
 * INCR: adds to a JSON number (a missing key starts at 0), keeps the TTL, writes the result as
 * JavaScript writes numbers. KEYS: value. ARGV: head, key, by.
 * Returns {INCR_OK, flags, new text, purged...} or {INCR_WRONG_TYPE, flags, held text, purged...}
 * or {INCR_OVERFLOW, flags, '', purged...}; only INCR_OK changes anything.
 */
export const INCR = new Script(`
local head, key, by = ARGV[1], ARGV[2], tonumber(ARGV[3])
local flags, gone = purge(head, now_ms())
local text = redis.call('GET', KEYS[1])
local n = 0
if text then
  n = json_value(text, 1)
  if type(n) ~= 'number' then return {0, flags, text, unpack(gone)} end
end
local r = n + by
if r ~= r or r > 9007199254740991 or r < -9007199254740991 then return {-1, flags, '', unpack(gone)} end
local out = js_number(r)
if text then
  redis.call('SET', KEYS[1], out, 'KEEPTTL')
else
  redis.call('SET', KEYS[1], out)
  flags = bit.bor(flags, added(head, key))
end
publish('incr', key, out)
return {1, flags, out, unpack(gone)}
`);

/**
 * CAS: writes `value` (without TTL) when the key holds a value equal to `expected` as JSON (see
 * lua.ts). KEYS: value. ARGV: head, key, expected, value. Returns {written (0/1), flags, purged...}.
 */
export const CAS = new Script(`
local head, key, expected, value = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local flags, gone = purge(head, now_ms())
local text = redis.call('GET', KEYS[1])
if not text or not json_equal(text, expected) then return {0, flags, unpack(gone)} end
redis.call('SET', KEYS[1], value)
redis.call('ZREM', head .. 'e', key)
publish('cas', key, value)
return {1, flags, unpack(gone)}
`);

/** Most keys one DROP step deletes (each step is one script: other clients' commands run between). */
export const DROP_BATCH = 500;

/**
 * One step of DROP: deletes up to DROP_BATCH keys of the namespace's subtree, deepest namespace
 * with keys of its own first (the child indexes lead to one: a namespace with a count has own keys
 * or a child with a count). KEYS: counts. ARGV: head, ns, keys deleted by the earlier steps (the
 * last step publishes the drop event when there were any). Returns {deleted, done (0/1), flags,
 * purged...}.
 */
export const DROP = new Script(`
local head, ns = ARGV[1], ARGV[2]
local flags, gone = purge(head, now_ms())
local function with_keys(path)
  while true do
    if redis.call('EXISTS', head .. 'k:' .. path) == 1 then return path end
    local child = redis.call('ZRANGE', head .. 'n:' .. path, 0, 0)[1]
    if child == nil then return nil end
    path = path .. '^' .. child
  end
end
local deleted = 0
while deleted < ${DROP_BATCH} do
  local path = with_keys(ns)
  if path == nil then break end
  -- A namespace's keys go together: one DEL, one ZREM per index, one count update per ancestor.
  local names = redis.call('ZRANGE', head .. 'k:' .. path, 0, ${DROP_BATCH} - deleted - 1)
  local keys, values = {}, {}
  for i, name in ipairs(names) do
    keys[i] = path .. '^' .. name
    values[i] = head .. 'v:' .. keys[i]
  end
  redis.call('DEL', unpack(values))
  redis.call('ZREM', head .. 'e', unpack(keys))
  flags = bit.bor(flags, removed_many(head, path, names))
  deleted = deleted + #names
end
local done = 0
if redis.call('HEXISTS', KEYS[1], ns) == 0 then
  done = 1
  if deleted + tonumber(ARGV[3]) > 0 then publish('drop', ns) end
end
return {deleted, done, flags, unpack(gone)}
`);

/**
 * The figures of one top-level namespace for stats(), after purging. KEYS: counts. ARGV: head.
 * Returns {namespaces in T (T included), keys with a TTL, flags, purged...}.
 */
export const FIGURES = new Script(`
local head = ARGV[1]
local flags, gone = purge(head, now_ms())
return {redis.call('HLEN', KEYS[1]), redis.call('ZCARD', head .. 'e'), flags, unpack(gone)}
`);

/**
 * MSET within one top-level namespace: every entry written without TTL, or none (one script).
 * KEYS: the first value key (routes to T's slot). ARGV: head, then key, value pairs.
 * Returns {keys created, flags, purged...}.
 */
export const MSET = new Script(`
local head = ARGV[1]
local flags, gone = purge(head, now_ms())
local created = 0
for i = 2, #ARGV - 2, 2 do
  local key, value = ARGV[i], ARGV[i + 1]
  local v = head .. 'v:' .. key
  local existed = redis.call('EXISTS', v) == 1
  redis.call('SET', v, value)
  redis.call('ZREM', head .. 'e', key)
  if not existed then
    flags = bit.bor(flags, added(head, key))
    created = created + 1
  end
  publish('set', key, value)
end
return {created, flags, unpack(gone)}
`);

/** Only the purge (a read that missed: its key may have just expired). KEYS: counts. ARGV: head. Returns {flags, purged...}. */
export const PURGE = new Script(`
local flags, gone = purge(ARGV[1], now_ms())
return {flags, unpack(gone)}
`);
