-- Shared by the wrk scripts of bench/run (loaded with dofile from each one).
--
-- setup() numbers the threads (the global `id` in each thread: 0, 1, ...),
-- so that scripts can give each thread its own ticket file. done() prints
-- one parseable line that bench/run reads:
--
--   BENCH name=<BENCH_NAME> requests=N duration_us=N rps=F p50_us=F p99_us=F
--         p999_us=F max_us=F status_errors=N connect=N read=N write=N
--         timeout=N [script-specific key=value ...]
--
-- status_errors is wrk's count of responses with a status >= 400; the socket
-- error counts are wrk's own. Scripts add their own fields by defining a
-- global function bench_extra(threads) that returns " key=value ...".

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- Sum a numeric global over all threads (0 where a thread never set it).
function bench_sum(name)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + (tonumber(t:get(name)) or 0)
  end
  return total
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  local extra = ""
  if bench_extra then
    extra = bench_extra(threads)
  end
  io.write(string.format(
    "BENCH name=%s requests=%d duration_us=%d rps=%.1f p50_us=%.0f p99_us=%.0f p999_us=%.0f max_us=%.0f"
      .. " status_errors=%d connect=%d read=%d write=%d timeout=%d%s\n",
    os.getenv("BENCH_NAME") or "unnamed", summary.requests, summary.duration,
    summary.requests / secs, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.max, e.status, e.connect, e.read,
    e.write, e.timeout, extra))
end
