-- POST /v1/tickets/redeem, each request with the next pre-minted ticket
-- from this thread's own file BENCH_TICKETS.<id> (written by premint.lua), so
-- every ticket is redeemed once. Every answer but 200 is an error (4xx/5xx:
-- status_errors). A thread that runs out of tickets stops and reports
-- exhausted=1: its rate is then too low and bench/run flags the result.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

wrk.method = "POST"
wrk.path = "/v1/tickets/redeem"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_REDEEM_KEY")
wrk.headers["Content-Type"] = "application/json"

local body_end = string.format('","origin":"%s"}', os.getenv("BENCH_ORIGIN"))
-- The tickets stay in one string (they all have the same length) rather
-- than in a table of hundreds of thousands of strings, which every garbage
-- collection cycle of the wrk thread would traverse: the client's own pauses
-- would show up as the service's latency.
local data, len, n, i = nil, 0, 0, 0
-- The whole request but the ticket, built once: every ticket has the same
-- length, so Content-Length never changes, and a request is then two string
-- concatenations instead of a wrk.format call (the client shares the CPU
-- with the service; its cost per request lowers the measured rate).
local before, after = nil, nil
exhausted = 0
loaded = 0

function init(args)
  local path = os.getenv("BENCH_TICKETS") .. "." .. id
  local f = assert(io.open(path, "rb"))
  data = f:read("*a")
  f:close()
  local nl = data:find("\n", 1, true)
  assert(nl, "no tickets in " .. path)
  len = nl - 1
  n = #data / (len + 1)
  assert(n == math.floor(n), "tickets of different lengths in " .. path)
  loaded = n
  local placeholder = string.rep("\0", len)
  local template = wrk.format(nil, nil, nil, '{"ticket":"' .. placeholder .. body_end)
  local at = template:find(placeholder, 1, true)
  before, after = template:sub(1, at - 1), template:sub(at + len)
end

function request()
  i = i + 1
  if i > n then
    -- Out of tickets: stop this thread. Connections that still send in this
    -- turn of wrk's event loop send a GET /healthz rather than a used ticket
    -- (which would show up as reuse in the service's metrics and logs).
    exhausted = 1
    wrk.thread:stop()
    return wrk.format("GET", "/healthz", {}, nil)
  end
  local at = (i - 1) * (len + 1) + 1
  return before .. data:sub(at, at + len - 1) .. after
end

function bench_extra(threads)
  return string.format(" tickets=%d exhausted=%d", bench_sum("loaded"), bench_sum("exhausted"))
end
