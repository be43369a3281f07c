-- Request mix of bench/soak.sh for wrk (LuaJIT; one Lua state per wrk thread).
--
-- Every request is GET /api/v4/ofertasws with the JWT from BENCH_TOKEN. Per request, at
-- random:
--   35 %  Accept-Encoding: zstd + If-None-Match with the last zstd ETag this thread saw
--   15 %  Accept-Encoding: gzip + If-None-Match with the last gzip ETag this thread saw
--         (both 304, or 200 with the new snapshot after a refresh)
--   25 %  Accept-Encoding: zstd                  → 200, zstd body
--   24 %  Accept-Encoding: gzip                  → 200, gzip body
--    1 %  Accept-Encoding: identity              → 200, the whole JSON document
-- Each thread stops after BENCH_REQUESTS_PER_THREAD responses and leaves a marker file in
-- BENCH_DONE_DIR (wrk itself only knows durations; bench/soak.sh then interrupts it).
-- BENCH_DELAY_MS > 0 paces every connection with wrk's delay().

local token = os.getenv("BENCH_TOKEN")
local limit = tonumber(os.getenv("BENCH_REQUESTS_PER_THREAD") or "0")
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
local done_dir = os.getenv("BENCH_DONE_DIR") or "."
local path = "/api/v4/ofertasws"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

-- Per thread (read back by done()).
responses = 0
counts = {}
etag_changes = 0
local etags = {}

function init(args)
  math.randomseed(os.time() * 100 + (id or 0))
end

local function get(encoding, revalidate)
  local headers = { ["Authorization"] = "Bearer " .. token, ["Accept-Encoding"] = encoding }
  if revalidate and etags[encoding] then
    headers["If-None-Match"] = etags[encoding]
  end
  return wrk.format("GET", path, headers)
end

function request()
  local r = math.random(100)
  if r <= 35 then
    return get("zstd", true)
  elseif r <= 50 then
    return get("gzip", true)
  elseif r <= 75 then
    return get("zstd", false)
  elseif r <= 99 then
    return get("gzip", false)
  end
  return get("identity", false)
end

local function encoding_of(tag)
  local suffix = tag:sub(-6)
  if suffix == '-zstd"' then
    return "zstd"
  elseif suffix == '-gzip"' then
    return "gzip"
  end
  return "identity"
end

function response(status, headers, body)
  responses = responses + 1
  local tag = headers["etag"] or headers["ETag"] or ""
  local encoding = encoding_of(tag)
  if tag ~= "" and etags[encoding] ~= tag then
    if etags[encoding] then
      etag_changes = etag_changes + 1
    end
    etags[encoding] = tag
  end
  local key = status .. " " .. encoding
  counts[key] = (counts[key] or 0) + 1
  if responses == limit then
    local marker = io.open(done_dir .. "/thread-" .. id, "w")
    if marker then
      marker:close()
    end
    wrk.thread:stop()
  end
end

if pause > 0 then
  function delay()
    return pause
  end
end

function done(summary, latency, requests)
  local total, changes = {}, 0
  for _, thread in ipairs(threads) do
    for key, n in pairs(thread:get("counts")) do
      total[key] = (total[key] or 0) + n
    end
    changes = changes + thread:get("etag_changes")
  end
  local keys = {}
  for key in pairs(total) do
    keys[#keys + 1] = key
  end
  table.sort(keys)
  io.write("response mix (status encoding=count):")
  for _, key in ipairs(keys) do
    io.write(string.format(" %s=%d", key, total[key]))
  end
  io.write(string.format("\nETag changes seen by the clients (per thread and encoding): %d\n", changes))
  io.write(string.format("latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
