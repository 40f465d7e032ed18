-- wrk script of bench/soak.sh: bench/mix.lua's round-robin of AdmissionReviews (soak.sh
-- adds, through EXTRA_REVIEWS, a Deployment without resources, whose verdict follows
-- require-resources' mode, which the soak switches), with a pause of DELAY_MS
-- milliseconds before each request on a connection, so the load is moderate (about
-- CONNECTIONS * 1000 / DELAY_MS requests per second at most) rather than all the
-- machine can take.
--
-- Every answer is judged against the verdict its review must get: the uid echoed,
-- allowed or denied, and the policy that denies or warns named. A 200 with another
-- verdict counts as wrong; done() prints "verdicts judged: N, wrong: M" and the first
-- wrong answers.
dofile((os.getenv("BENCH_DIR") or "bench") .. "/mix.lua")

local pause = tonumber(os.getenv("DELAY_MS") or "20")

-- uid -> the verdicts an answer may give, one of which must hold (two where the
-- policy's mode changes under the soak's reloads).
local expected = {
  ["b0000000-0000-4000-8000-000000000001"] = {{allowed = true, warns = "[trusted-registries]"}},
  ["b0000000-0000-4000-8000-000000000002"] = {{allowed = false, denies = "[no-latest-tag]"}},
  ["b0000000-0000-4000-8000-000000000003"] = {{allowed = true}},
  ["b0000000-0000-4000-8000-000000000004"] = {{allowed = true}},
  ["b0000000-0000-4000-8000-000000000005"] = {{allowed = false, denies = "[no-staging-issuer]"}},
  ["b0000000-0000-4000-8000-000000000006"] = {
    {allowed = true, warns = "[require-resources]"},
    {allowed = false, denies = "[require-resources]"},
  },
}

function delay()
  return pause
end

local function plain(s)
  return (s:gsub("[%[%]%-%.%+%*%?%^%$%(%)%%]", "%%%0"))
end

-- Does `body` say what `want` says?
local function holds(body, want)
  local allowed = body:match('"allowed":(%a+)')
  if allowed ~= tostring(want.allowed) then return false end
  local message = body:match('"message":"(.-)"') or ""
  -- Greedy: a warning holds "]" itself; the array is the end of the body.
  local warnings = body:match('"warnings":%[(.*)%]') or ""
  if want.denies and message:find("^" .. plain(want.denies)) == nil then return false end
  if want.warns and warnings:find(plain(want.warns)) == nil then return false end
  if not want.warns and want.allowed and warnings ~= "" then return false end
  return true
end

judged = 0
wrong = 0
wrong_samples = ""

function response(status, headers, body)
  if status ~= 200 then
    return
  end
  judged = judged + 1
  local uid = body:match('"uid":"([^"]*)"')
  local ok = false
  for _, want in ipairs(expected[uid] or {}) do
    if holds(body, want) then ok = true end
  end
  if not ok then
    wrong = wrong + 1
    if wrong <= 5 then
      wrong_samples = wrong_samples .. "  " .. body:sub(1, 300) .. "\n"
    end
  end
end

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local all, bad, samples = 0, 0, ""
  for _, t in ipairs(threads) do
    all = all + (t:get("judged") or 0)
    bad = bad + (t:get("wrong") or 0)
    samples = samples .. (t:get("wrong_samples") or "")
  end
  io.write(string.format("verdicts judged: %d, wrong: %d\n", all, bad))
  if bad > 0 then
    io.write("first wrong answers:\n" .. samples)
  end
end
