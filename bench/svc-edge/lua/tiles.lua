-- tiles: round-robin over tiles.txt (one z/x/y per line) with Accept-Encoding: gzip.
-- wrk ... -s tiles.lua URL -- TILES_TXT PREFIX
--   svc-edge: PREFIX /edge/tiles/bench/   nginx: PREFIX /tiles/
local reqs, n, i = {}, 0, 0

function init(args)
    local list, prefix = args[1], args[2] or "/tiles/"
    local hdr = { ["Accept-Encoding"] = "gzip" }
    for line in io.lines(list) do
        if line ~= "" then
            n = n + 1
            reqs[n] = wrk.format("GET", prefix .. line .. ".mvt", hdr)
        end
    end
    assert(n > 0, "empty tile list " .. list)
end

function request()
    i = i % n + 1
    return reqs[i]
end
