module github.com/cri-server/cri-server

go 1.26.0
