// Command modelreg-pull downloads a model version into a directory, every file verified by
// SHA-256: the init container of a Kubernetes pod that serves a model.
//
//	modelreg-pull [-force] [-allow-pending] namespace/model@alias DIR
//
// The version may also be given by number (namespace/model/3) or resource name. Addresses,
// credential and TLS come from the environment as for every modelreg client:
// MODELREG_METADATA_ADDR, MODELREG_ARTIFACT_ADDR, MODELREG_TOKEN or MODELREG_TOKEN_FILE (a
// mounted secret), MODELREG_TLS, MODELREG_TLS_CA_FILE. Build it static: CGO_ENABLED=0 go build.
//
// Exit codes, as the `modelreg` CLI's (docs/clients.md):
//
//	0    pulled (or every file was there already with the right bytes)
//	1    any other failure (the status and reason are printed)
//	2    usage: wrong arguments, an invalid reference or TLS setting
//	3    the version or alias does not exist
//	4    conflict: the destination holds other content under paths the version needs (use
//	     -force), or the version is not sealed yet
//	5    integrity: received bytes do not match the manifest, or the manifest names an unsafe
//	     path (nothing was placed)
//	6    the registry stayed unavailable through every retry (or a deadline passed)
//	7    refused by a governance rule
//	8    not authenticated: no credential, a bad one, or an unusable credential source
//	9    the credential lacks the role (reason IAM_PERMISSION_DENIED)
//	130  interrupted (SIGINT or SIGTERM); partial downloads stay to be resumed
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc/codes"

	"github.com/modelreg/modelreg/clients/go/modelreg"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	flags := flag.NewFlagSet("modelreg-pull", flag.ContinueOnError)
	force := flags.Bool("force", false, "replace other content under the version's paths once every file is verified")
	allowPending := flags.Bool("allow-pending", false, "pull a version that is not sealed yet")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "usage: modelreg-pull [-force] [-allow-pending] namespace/model@alias DIR")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() != 2 {
		flags.Usage()
		return 2
	}
	ref, dir := flags.Arg(0), flags.Arg(1)
	if _, err := modelreg.ParseVersionRef(ref); err != nil {
		fmt.Fprintln(os.Stderr, "modelreg-pull:", err)
		return 2
	}
	cfg, err := modelreg.ConfigFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "modelreg-pull:", err)
		return exitCode(err)
	}
	client, err := modelreg.Dial(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "modelreg-pull:", err)
		return 2
	}
	defer client.Close()
	// Kubernetes stops a pod with SIGTERM: end the transfer, leave the partial files to resume.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	result, err := client.Pull(ctx, ref, dir, modelreg.PullOptions{Force: *force, AllowPending: *allowPending})
	if err != nil {
		fmt.Fprintln(os.Stderr, "modelreg-pull:", err)
		var failed *modelreg.Error
		if errors.As(err, &failed) {
			for _, path := range failed.Paths {
				fmt.Fprintln(os.Stderr, "  in the way:", path)
			}
		}
		if ctx.Err() != nil {
			return 130
		}
		return exitCode(err)
	}
	fmt.Println(result)
	return 0
}

func exitCode(err error) int {
	switch modelreg.Reason(err) {
	case "IAM_PERMISSION_DENIED":
		return 9
	case "UNSAFE_MANIFEST":
		return 5
	case "TLS_CONFIG":
		return 2
	}
	switch modelreg.Code(err) {
	case codes.InvalidArgument, codes.OutOfRange:
		return 2
	case codes.NotFound:
		return 3
	case codes.AlreadyExists, codes.FailedPrecondition, codes.Aborted:
		return 4
	case codes.DataLoss:
		return 5
	case codes.Unavailable, codes.DeadlineExceeded:
		return 6
	case codes.PermissionDenied:
		return 7
	case codes.Unauthenticated:
		return 8
	}
	return 1
}
