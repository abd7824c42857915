-- wrk script: POST /api/track, batches of WRK_BATCH page views (default
-- 50), each request a new session of a new visitor (ids unique per wrk
-- thread and request), times within the last few minutes so no session
-- closes during the run. Counts 200 answers: each acknowledges a batch.
local batch = tonumber(os.getenv("WRK_BATCH") or "50")
local threads = {}
local counter = 0
tid = 0 -- global: setup() sets it per thread
acked = 0 -- global: done() reads it from each thread
local now_ms = os.time() * 1000

function setup(thread)
    thread:set("tid", #threads + 1)
    table.insert(threads, thread)
end

function request()
    counter = counter + 1
    local parts = {}
    for i = 1, batch do
        parts[i] = string.format(
            '{"type":"pageview","visitor_id":"bv-%d-%d","session_id":"bs-%d-%d",' ..
            '"ts":%d,"page_type":"product_related","page_id":"product/p%d","duration":%.1f}',
            tid, counter, tid, counter, now_ms - 120000 + i * 1000, (counter + i) % 200,
            (i * 7) % 90)
    end
    local body = '{"events":[' .. table.concat(parts, ",") .. ']}'
    return wrk.format("POST", "/api/track", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
    if status == 200 then
        acked = acked + 1
    end
end

function done(summary, latency, requests)
    local total = 0
    for _, t in ipairs(threads) do
        total = total + t:get("acked")
    end
    io.write(string.format("WRK_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d " ..
                           "acked_batches=%d batch=%d errors=%d\n",
                           summary.requests, summary.duration, latency:percentile(50),
                           latency:percentile(99), total, batch,
                           summary.errors.status + summary.errors.connect +
                           summary.errors.read + summary.errors.write +
                           summary.errors.timeout))
end
