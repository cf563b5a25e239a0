-- POST /v1/tickets with one static request (wrk's cheapest mode: no Lua
-- call per request). Anything but 201 shows up as status_errors (4xx/5xx).
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

wrk.method = "POST"
wrk.path = "/v1/tickets"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_MINT_KEY")
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"user_id":"bench-user","origin":"%s"}', os.getenv("BENCH_ORIGIN"))
