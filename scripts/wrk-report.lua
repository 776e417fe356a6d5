-- wrk reporter: one machine-readable line with throughput, errors and latency percentiles
-- (microseconds), including p99.9, which wrk's --latency table does not print, and the
-- percentile curve ([percentile, microseconds] pairs) that bench_report.py plots.
local curve_points = { 50, 75, 90, 95, 98, 99, 99.5, 99.9, 99.95, 99.99 }

done = function(summary, latency, requests)
  local e = summary.errors
  local curve = { string.format('[0,%d]', latency.min) }
  for _, p in ipairs(curve_points) do
    curve[#curve + 1] = string.format('[%s,%d]', p, latency:percentile(p))
  end
  curve[#curve + 1] = string.format('[100,%d]', latency.max)
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"errors":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"p999_us":%d,"max_us":%d,"percentiles":[%s]}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, table.concat(curve, ',')))
end
