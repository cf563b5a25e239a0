-- GET /readyz: the HTTP ceiling plus one store round trip (the store's PING
-- through the same client, timeout and metrics as every ticket operation),
-- no auth, no JSON, no crypto. The floor under a mint (one store call).
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

wrk.method = "GET"
wrk.path = "/readyz"
