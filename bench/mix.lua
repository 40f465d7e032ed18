-- wrk script: POST a realistic mix of AdmissionReviews to /validate over keep-alive
-- connections, round-robin: a 3-container Deployment (allowed), a Pod with a latest
-- image (denied), an Ingress (allowed), a labelled Namespace (allowed) and a
-- Certificate with a staging issuer (denied). REVIEWS_DIR names their directory.
local dir = os.getenv("REVIEWS_DIR") or "bench/reviews"
-- RATE (requests/s, all connections together) with CONNS (the -c value) paces each
-- connection: wrk's delay() runs before every request, so the rate is fixed.
local rate = tonumber(os.getenv("RATE") or "0")
local conns = tonumber(os.getenv("CONNS") or "1")
local names = {"deployment-allowed", "pod-denied", "ingress-allowed", "namespace-allowed", "certificate-denied"}
-- REVIEWS: review names (comma-separated) that replace the mix (bench/paced.sh sends one).
if os.getenv("REVIEWS") then
  names = {}
  for name in os.getenv("REVIEWS"):gmatch("[^,]+") do
    names[#names + 1] = name
  end
end
-- EXTRA_REVIEWS: more review names (comma-separated) for the round-robin.
for extra in (os.getenv("EXTRA_REVIEWS") or ""):gmatch("[^,]+") do
  names[#names + 1] = extra
end
local requests = {}
local counter = 0

function init(args)
  for i, name in ipairs(names) do
    local f = assert(io.open(dir .. "/" .. name .. ".json", "rb"))
    local body = f:read("*a")
    f:close()
    requests[i] = wrk.format("POST", "/validate", {["Content-Type"] = "application/json"}, body)
  end
end

function delay()
  if rate > 0 then
    return 1000 * conns / rate
  end
  return 0
end

function request()
  counter = counter + 1
  return requests[(counter % #requests) + 1]
end

-- A non-200 answer is an error: count it so the report shows it.
function response(status, headers, body)
  if status ~= 200 then
    wrk.thread:set("bad", (wrk.thread:get("bad") or 0) + 1)
  end
end
