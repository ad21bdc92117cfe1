/**
 * Lua helpers for the Redis Cluster engine's scripts (issue 16): INCR and CAS must be atomic, so
 * they run inside Redis, and there they must agree with the in-memory engine to the byte.
 *
 * - `json_equal(a, b)`: whether two JSON texts denote the same value, as store/json-equal.ts
 *   decides it (members in any order, arrays by position, numbers by value). Redis's cjson cannot
 *   be used: it decodes `[]` and `{}` to the same empty table. Strings are compared as their JSON
 *   text, which is exact for texts JSON.stringify wrote (it escapes a given string one way only);
 *   the store only ever holds such texts, and the engine sends the expected value the same way.
 * - `js_number(n)`: a finite number as JavaScript writes it (`String(n)`, `JSON.stringify(n)`):
 *   the shortest digits that read back to n, in JavaScript's layout (`1e+21`, `1e-7`, `0.000001`,
 *   `-0` as `0`). Lua's `%.14g` would lose digits and `%.17g` would add some (`0.1` as
 *   `0.10000000000000001`).
 *
 * Both are plain Lua 5.1 (what Redis embeds), kept as source text to prepend to a script.
 */
export const LUA_JSON = `
local function json_skip(s, i)
  local _, e = string.find(s, '^[ \\t\\r\\n]*', i)
  return e + 1
end

-- Parses the JSON value at i; returns a comparable form and the index after it. Objects become
-- {o = {[key text] = value}, n = count}, arrays {a = {values}, n = count}, numbers Lua numbers,
-- strings and literals their text (prefixed so that no string equals a literal or a number).
local json_value
local function json_string_end(s, i)
  local j = i + 1
  while true do
    local c = string.byte(s, j)
    if c == 92 then j = j + 2
    elseif c == 34 then return j
    elseif c == nil then error('unterminated JSON string')
    else j = j + 1 end
  end
end

json_value = function(s, i)
  i = json_skip(s, i)
  local c = string.byte(s, i)
  if c == 123 then
    local members, n = {}, 0
    i = json_skip(s, i + 1)
    if string.byte(s, i) == 125 then return {o = members, n = 0}, i + 1 end
    while true do
      i = json_skip(s, i)
      local e = json_string_end(s, i)
      local key = string.sub(s, i, e)
      i = json_skip(s, e + 1) + 1 -- the ':'
      local v
      v, i = json_value(s, i)
      if members[key] == nil then n = n + 1 end
      members[key] = v
      i = json_skip(s, i)
      if string.byte(s, i) == 125 then return {o = members, n = n}, i + 1 end
      i = i + 1 -- the ','
    end
  elseif c == 91 then
    local items, n = {}, 0
    i = json_skip(s, i + 1)
    if string.byte(s, i) == 93 then return {a = items, n = 0}, i + 1 end
    while true do
      local v
      v, i = json_value(s, i)
      n = n + 1
      items[n] = v
      i = json_skip(s, i)
      if string.byte(s, i) == 93 then return {a = items, n = n}, i + 1 end
      i = i + 1
    end
  elseif c == 34 then
    local e = json_string_end(s, i)
    return 's' .. string.sub(s, i, e), e + 1
  else
    local _, e = string.find(s, '^[%-%+%.%deE]+', i)
    if e ~= nil then return tonumber(string.sub(s, i, e)), e + 1 end
    _, e = string.find(s, '^%a+', i)
    if e == nil then error('not JSON at ' .. i) end
    return 'l' .. string.sub(s, i, e), e + 1
  end
end

local function json_same(x, y)
  local tx, ty = type(x), type(y)
  if tx ~= 'table' or ty ~= 'table' then return tx == ty and x == y end
  if x.n ~= y.n then return false end
  if x.o ~= nil then
    if y.o == nil then return false end
    for k, v in pairs(x.o) do
      local w = y.o[k]
      if w == nil or not json_same(v, w) then return false end
    end
    return true
  end
  if y.a == nil then return false end
  for i = 1, x.n do
    if not json_same(x.a[i], y.a[i]) then return false end
  end
  return true
end

local function json_equal(a, b)
  if a == b then return true end
  return json_same((json_value(a, 1)), (json_value(b, 1)))
end
`;

export const LUA_JS_NUMBER = `
local function js_number(n)
  if n == 0 then return '0' end
  if n ~= n or n == math.huge or n == -math.huge then error('not a finite number') end
  local sign = ''
  if n < 0 then sign = '-'; n = -n end
  -- The shortest digits that read back to n (the closest such, as JavaScript picks them).
  local digits, exp
  for p = 1, 17 do
    local t = string.format('%.' .. (p - 1) .. 'e', n)
    if tonumber(t) == n then
      local m, e = string.match(t, '^([%d%.]+)e([-+]%d+)$')
      digits = string.gsub(m, '%.', '')
      exp = tonumber(e)
      break
    end
  end
  digits = string.gsub(digits, '0+$', '')
  if digits == '' then digits = '0' end
  local k = string.len(digits)
  local point = exp + 1 -- where the decimal point goes, counted in digits
  local out
  if k <= point and point <= 21 then
    out = digits .. string.rep('0', point - k)
  elseif 0 < point and point <= 21 then
    out = string.sub(digits, 1, point) .. '.' .. string.sub(digits, point + 1)
  elseif -6 < point and point <= 0 then
    out = '0.' .. string.rep('0', -point) .. digits
  else
    local e = point - 1
    local mantissa = string.sub(digits, 1, 1)
    if k > 1 then mantissa = mantissa .. '.' .. string.sub(digits, 2) end
    if e >= 0 then out = mantissa .. 'e+' .. e else out = mantissa .. 'e-' .. (-e) end
  end
  return sign .. out
end
`;
