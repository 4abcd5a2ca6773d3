-- revalidate-304: GET one 1 KiB file with If-None-Match set to that server's own ETag.
-- wrk ... -s inm.lua URL -- PATH ETAG    (run.sh reads ETAG from `curl -sI` first)
local req

function init(args)
    req = wrk.format("GET", args[1], { ["If-None-Match"] = args[2] })
end

function request()
    return req
end
