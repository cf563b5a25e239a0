-- GET /healthz: the HTTP ceiling (no store, no auth, no JSON).
-- The URL given to wrk is the service root; the path is set here.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

wrk.method = "GET"
wrk.path = "/healthz"
