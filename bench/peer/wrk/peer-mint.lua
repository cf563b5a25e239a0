-- The peer's mint: GET /api/auth/auth_for_ws_connection/ with a DRF token,
-- as django-channels-jwt's README has a client obtain a ticket (a static
-- request, like bench/wrk/mint.lua for wsticket). Anything but 2xx shows up
-- as status_errors. The BENCH line comes from bench/wrk/common.lua.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

wrk.method = "GET"
wrk.path = "/api/auth/auth_for_ws_connection/"
wrk.headers["Authorization"] = "Token " .. os.getenv("PEER_TOKEN")
