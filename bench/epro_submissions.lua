-- wrk script of bench/epro_submissions.py (run by it; see there).
--
--   wrk ... -s bench/epro_submissions.lua <url> -- healthz
--   wrk ... -s bench/epro_submissions.lua <url> -- submit <request file> <wrk threads>
--
-- The request file holds one submission a line: "<access token>\t<JSON body>", each
-- for its own instance with its own client_id. Thread i of n takes lines i, i+n, ...
-- and sends each once: running out answers 404 (counted as an error), never a replay.
-- `done` prints one "BENCH {json}" line the Python side parses.

local threads = {}
local counter = 1

function setup(thread)
   thread:set("thread_index", #threads)
   table.insert(threads, thread)
end

function init(args)
   mode = args[1]
   submissions = {}
   if mode ~= "submit" then
      return
   end
   local every = tonumber(args[3])
   local line_number = 0
   for line in io.lines(args[2]) do
      if line_number % every == thread_index then
         local token, body = line:match("^([^\t]+)\t(.+)$")
         submissions[#submissions + 1] = wrk.format("POST", "/api/v1/epro/responses", {
            ["Authorization"] = "Bearer " .. token,
            ["Content-Type"] = "application/json",
         }, body)
      end
      line_number = line_number + 1
   end
end

function request()
   if mode ~= "submit" then
      return wrk.format("GET", "/healthz")
   end
   local prepared = submissions[counter]
   counter = counter + 1
   if prepared == nil then
      return wrk.format("GET", "/no-more-prepared-submissions")
   end
   return prepared
end

function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      'BENCH {"requests": %d, "duration_us": %d, "non_2xx": %d, "connect_errors": %d, '
         .. '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, '
         .. '"p90_us": %d, "p99_us": %d, "max_us": %d}\n',
      summary.requests, summary.duration, errors.status, errors.connect, errors.read,
      errors.write, errors.timeout, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max
   ))
end
