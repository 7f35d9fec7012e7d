module github.com/ustack/ustack

go 1.26.0

require (
	github.com/songgao/water v0.0.0-20200317203138-2b4b6d7c09d8
	golang.org/x/sys v0.50.0
)
