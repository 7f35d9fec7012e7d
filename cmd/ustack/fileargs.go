package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// parseOneFile parses args with fs, flags before or after the one file
// name a command such as trace or tsg takes, and returns that name. Too
// few or too many names print the usage and are an error naming them.
func parseOneFile(fs *flag.FlagSet, args []string) (string, error) {
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", err
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) != 1 {
		fs.Usage()
		if len(files) == 0 {
			return "", errors.New("no capture file given")
		}
		return "", fmt.Errorf("one capture file at a time, got %d: %s", len(files), strings.Join(files, " "))
	}
	return files[0], nil
}
