-- wrk script: POST /api/predict with raw UCI features, no explanation.
-- The rows vary (page counts, durations, month, visitor type) so the
-- server does not score one row over and over. Optional rate limit per
-- connection: WRK_DELAY_MS in the environment (milliseconds between a
-- connection's requests), for the latency run at a fixed rate.
local months = {"Feb", "Mar", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
local visitors = {"Returning_Visitor", "New_Visitor", "Other"}
local bodies = {}
local n = 0
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")

function init(args)
    for i = 1, 64 do
        bodies[i] = string.format(
            '{"Administrative":%d,"Administrative_Duration":%.1f,"Informational":%d,' ..
            '"Informational_Duration":%.1f,"ProductRelated":%d,"ProductRelated_Duration":%.1f,' ..
            '"BounceRates":%.4f,"ExitRates":%.4f,"PageValues":%.2f,"SpecialDay":0,' ..
            '"Month":"%s","OperatingSystems":%d,"Browser":%d,"Region":%d,"TrafficType":%d,' ..
            '"VisitorType":"%s","Weekend":%s,"reasons":0}',
            i % 7, (i * 13) % 300, i % 3, (i * 7) % 120, 5 + (i * 11) % 60,
            (i * 97) % 3000, (i % 10) / 200, 0.01 + (i % 10) / 150, (i * 17) % 40,
            months[1 + i % #months], 1 + i % 4, 1 + i % 6, 1 + i % 9, 1 + i % 13,
            visitors[1 + i % #visitors], (i % 4 == 0) and "true" or "false")
    end
end

function request()
    n = n + 1
    return wrk.format("POST", "/api/predict", {["Content-Type"] = "application/json"},
                      bodies[1 + n % #bodies])
end

if delay_ms > 0 then
    function delay()
        return delay_ms
    end
end

local non200 = 0
function response(status, headers, body)
    if status ~= 200 then
        non200 = non200 + 1
    end
end

function done(summary, latency, requests)
    io.write(string.format("WRK_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d " ..
                           "errors=%d\n",
                           summary.requests, summary.duration, latency:percentile(50),
                           latency:percentile(99),
                           summary.errors.status + summary.errors.connect +
                           summary.errors.read + summary.errors.write +
                           summary.errors.timeout))
end
