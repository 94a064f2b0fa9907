module github.com/discshm/discshm/bindings/go

go 1.19
