-- Mints tickets for a later redeem run: each thread writes the tickets from
-- its 201 responses to its own file, BENCH_TICKETS.<id>, one per line, and
-- stops after BENCH_PER_THREAD of them; it then creates BENCH_TICKETS.<id>.done
-- (bench/run waits for those and then stops wrk). The redeem run uses the
-- same number of threads, so thread <id> there reads exactly this file: the
-- threads' slices are disjoint and no ticket is redeemed twice.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

wrk.method = "POST"
wrk.path = "/v1/tickets"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_MINT_KEY")
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"user_id":"bench-user","origin":"%s","ttl_secs":%d}',
  os.getenv("BENCH_ORIGIN"), tonumber(os.getenv("BENCH_TTL")))

local want = tonumber(os.getenv("BENCH_PER_THREAD"))
local prefix = os.getenv("BENCH_TICKETS")
local out
got = 0
finished = false

function init(args)
  out = assert(io.open(prefix .. "." .. id, "w"))
end

function response(status, headers, body)
  if finished then
    return
  end
  if status == 201 then
    local ticket = body:match('"ticket"%s*:%s*"(wst_[^"]+)"')
    if ticket then
      out:write(ticket, "\n")
      got = got + 1
    end
  end
  if got >= want then
    finished = true
    out:close()
    assert(io.open(prefix .. "." .. id .. ".done", "w")):close()
    wrk.thread:stop()
  end
end

function bench_extra(threads)
  return string.format(" tickets=%d", bench_sum("got"))
end
