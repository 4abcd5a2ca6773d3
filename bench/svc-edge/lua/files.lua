-- files-1k: round-robin GET over static/1k/f0000..f0999.bin.
-- wrk ... -s files.lua URL -- PREFIX   (PREFIX: /edge/assets/1k/ for svc-edge, /1k/ for nginx)
-- Requests are preformatted in init() so wrk spends the same tiny cost on both servers.
local reqs, n, i = {}, 1000, 0

function init(args)
    local prefix = args[1] or "/1k/"
    for k = 0, n - 1 do
        reqs[k + 1] = wrk.format("GET", string.format("%sf%04d.bin", prefix, k))
    end
end

function request()
    i = i % n + 1
    return reqs[i]
end
