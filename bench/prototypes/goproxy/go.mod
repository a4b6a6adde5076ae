module zai-proxy/bench/goproxy

go 1.22
