-- range-64k: GET big.bin with Range: bytes=a-(a+65535), a a seeded pseudo-random multiple of
-- 64 KiB. wrk ... -s range.lua URL -- PATH [SEED]
-- A Park-Miller LCG (exact in doubles; not math.random) keeps the offset sequence identical for every server and run.
local reqs, n, i = {}, 4096, 0
local CHUNK, SIZE = 65536, 16 * 1024 * 1024

function init(args)
    local path = args[1] or "/big.bin"
    local state = tonumber(args[2] or "20250101")
    local slots = SIZE / CHUNK
    for k = 1, n do
        state = (16807 * state) % 2147483647
        local a = (state % slots) * CHUNK
        reqs[k] = wrk.format("GET", path, { ["Range"] = string.format("bytes=%d-%d", a, a + CHUNK - 1) })
    end
end

function request()
    i = i % n + 1
    return reqs[i]
end
