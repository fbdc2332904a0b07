-- post.lua - wrk script: every request is POST /v1/detect with one JPEG
-- file as its body.
--
--   wrk -t2 -c4 -d10s --timeout 10s -s post.lua \
--       http://127.0.0.1:8080/v1/detect -- /usr/share/darknet/data/dog.jpg
--
-- The file is read once per wrk thread, in init. At the end one line
-- starting "post.lua:" gives the figures as JSON (requests, seconds,
-- requests per second, latency percentiles in microseconds, and wrk's
-- error counts), for scripts that would rather not parse wrk's text.

function init(args)
   local path = args[1]
   if path == nil then
      error("post.lua: name the JPEG file after --")
   end
   local f = assert(io.open(path, "rb"))
   local body = f:read("*a")
   f:close()
   wrk.method = "POST"
   wrk.body = body
   wrk.headers["Content-Type"] = "image/jpeg"
end

function done(summary, latency, requests)
   local e = summary.errors
   local seconds = summary.duration / 1e6
   io.write(string.format(
      'post.lua: {"requests":%d,"seconds":%.3f,"rps":%.3f,' ..
      '"latency_us":{"mean":%.0f,"p50":%d,"p90":%d,"p99":%d,"max":%d},' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,' ..
      '"timeout":%d}}\n',
      summary.requests, seconds, summary.requests / seconds,
      latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, e.connect, e.read, e.write,
      e.status, e.timeout))
end
