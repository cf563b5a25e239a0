-- POST /v1/tickets for 1000 users in turn (precomputed requests, so the
-- Lua cost per request is one table lookup): the mint of a service with
-- many users, where each user's limiter keys stay small.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local reqs, n, i = {}, 1000, 0

function init(args)
  local headers = {
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_MINT_KEY"),
    ["Content-Type"] = "application/json",
  }
  local origin = os.getenv("BENCH_ORIGIN")
  for u = 1, n do
    reqs[u] = wrk.format("POST", "/v1/tickets", headers,
      string.format('{"user_id":"bench-user-%d","origin":"%s"}', u, origin))
  end
end

function request()
  i = i % n + 1
  return reqs[i]
end
