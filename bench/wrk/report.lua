-- The `done` function of every benchmark script: one JSON line, prefixed "WRK_JSON ", with the
-- run's throughput (requests/s), latency percentiles (ms) and errors (connection errors,
-- timeouts and non-2xx/3xx answers).
return function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout + summary.errors.status
  local ms = function(p) return latency:percentile(p) / 1000 end
  io.write(string.format(
    'WRK_JSON {"requests":%d,"seconds":%.3f,"rps":%.1f,"errors":%d,"non_2xx":%d,'
      .. '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f}\n',
    summary.requests, seconds, summary.requests / seconds, errors, summary.errors.status,
    ms(50), ms(90), ms(99), latency.max / 1000, latency.mean / 1000))
end
