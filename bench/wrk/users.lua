-- wrk script of the hot-path benchmark: every request is an authenticated read of the caller's
-- own record, `GET /api/v1/users/{id}`, cycling through the signed-in users listed in the file
-- given after `--` ("<user id> <access token>" per line). At the end it prints one JSON line
-- (prefixed "WRK_JSON ") with throughput, latency percentiles in milliseconds and errors.
--
--   wrk -t2 -c64 -d15s -s bench/wrk/users.lua http://127.0.0.1:8080 -- users.txt

local users = {}
local next_user = 0

function init(args)
  local file = assert(args[1], "pass the users file after --")
  for line in io.lines(file) do
    local id, token = line:match("^(%S+)%s+(%S+)")
    if id then
      users[#users + 1] = wrk.format("GET", "/api/v1/users/" .. id, { ["Authorization"] = "Bearer " .. token })
    end
  end
  assert(#users > 0, "no users in " .. file)
  -- Threads start at different users so that they do not walk in step.
  next_user = math.random(#users)
end

function request()
  next_user = next_user % #users + 1
  return users[next_user]
end

done = dofile((os.getenv("WRK_LIB") or "bench/wrk") .. "/report.lua")
