-- wrk script of bench/soak.sh: bench/mix.lua's round-robin of AdmissionReviews, with a
-- pause of DELAY_MS milliseconds before each request on a connection, so the load is
-- moderate (about CONNECTIONS * 1000 / DELAY_MS requests per second at most) rather
-- than all the machine can take.
dofile((os.getenv("BENCH_DIR") or "bench") .. "/mix.lua")

local pause = tonumber(os.getenv("DELAY_MS") or "20")

function delay()
  return pause
end
