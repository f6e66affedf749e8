module github.com/alphaswarm/controller

go 1.26.0
