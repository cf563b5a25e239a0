-- Mint + redeem pairs. Each thread keeps a queue of tickets from its 201
-- mint responses; a connection that is free sends a redeem of the oldest
-- queued ticket, or a mint when the queue is empty. So every minted ticket
-- is redeemed once, right after it was minted, and in the long run half the
-- requests are mints and half redeems. pairs = redeems answered 200;
-- bad = any other answer (a mint that is not 201, a redeem that is not 200).
-- The latency percentiles are over all requests, mints and redeems together.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local origin = os.getenv("BENCH_ORIGIN")
local mint_req, redeem_headers, body_end
local queue, head, tail = {}, 1, 0
pairs_ok = 0
bad = 0

function init(args)
  mint_req = wrk.format("POST", "/v1/tickets", {
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_MINT_KEY"),
    ["Content-Type"] = "application/json",
  }, string.format('{"user_id":"bench-user","origin":"%s"}', origin))
  redeem_headers = {
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_REDEEM_KEY"),
    ["Content-Type"] = "application/json",
  }
  body_end = string.format('","origin":"%s"}', origin)
end

function request()
  if head <= tail then
    local ticket = queue[head]
    queue[head] = nil
    head = head + 1
    return wrk.format("POST", "/v1/tickets/redeem", redeem_headers, '{"ticket":"' .. ticket .. body_end)
  end
  return mint_req
end

function response(status, headers, body)
  if status == 201 then
    local ticket = body:match('"ticket"%s*:%s*"(wst_[^"]+)"')
    if ticket then
      tail = tail + 1
      queue[tail] = ticket
    else
      bad = bad + 1
    end
  elseif status == 200 then
    pairs_ok = pairs_ok + 1
  else
    bad = bad + 1
  end
end

function bench_extra(threads)
  return string.format(" pairs=%d bad=%d", bench_sum("pairs_ok"), bench_sum("bad"))
end
