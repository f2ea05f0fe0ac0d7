// Command modelreg-bench times one push or one pull with the Go client, for
// bench/clients_bench.py (which runs the Python SDK the same way, on the same stack):
//
//	modelreg-bench push MODEL FILE
//	modelreg-bench pull VERSION_REF DIR
//
// Prints one JSON line: seconds (the whole call: hashing, transfer, verification), bytes, the
// version, and the process's peak RSS in MiB. Addresses and credential come from the environment.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/modelreg/modelreg/clients/go/modelreg"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "modelreg-bench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 3 || (args[0] != "push" && args[0] != "pull") {
		return fmt.Errorf("usage: modelreg-bench push MODEL FILE | modelreg-bench pull VERSION_REF DIR")
	}
	client, err := modelreg.DialFromEnv()
	if err != nil {
		return err
	}
	defer client.Close()
	ctx := context.Background()
	start := time.Now()
	var version string
	var size int64
	if args[0] == "push" {
		pushed, err := client.Push(ctx, args[1], args[2], modelreg.PushOptions{})
		if err != nil {
			return err
		}
		version = pushed.Version.GetName()
		for _, f := range pushed.Files {
			size += f.TransferredBytes
		}
	} else {
		pulled, err := client.Pull(ctx, args[1], args[2], modelreg.PullOptions{})
		if err != nil {
			return err
		}
		version = pulled.Version.GetName()
		for _, f := range pulled.Files {
			size += f.TransferredBytes
		}
	}
	seconds := time.Since(start).Seconds()
	line, err := json.Marshal(map[string]any{
		"seconds": seconds, "bytes": size, "model_version": version, "peak_rss_mib": peakRSSMiB(),
	})
	if err != nil {
		return err
	}
	fmt.Println(string(line))
	return nil
}

// peakRSSMiB is VmHWM of this process (Linux), 0 where /proc has none.
func peakRSSMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if value, found := strings.CutPrefix(scanner.Text(), "VmHWM:"); found {
			kib, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 64)
			return kib / 1024
		}
	}
	return 0
}
