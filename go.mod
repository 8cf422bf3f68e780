module github.com/seed-a1426414/stampede

go 1.26
