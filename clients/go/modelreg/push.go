package modelreg

import (
	"context"
	"errors"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/structpb"

	v1 "github.com/modelreg/modelreg/clients/go/gen/modelregistry/v1"
)

// PushOptions describe the version a push creates.
type PushOptions struct {
	Description string
	// Hyperparameters: any JSON-like values (nested maps and lists included).
	Params  map[string]any
	Metrics map[string]float64
	Tags    map[string]string
	// Point this alias at the sealed version ("" for none).
	Alias string
	// Fail with NOT_FOUND instead of registering a model that does not exist yet.
	NoCreateModel bool
	// A request id for CreateModelVersion (AIP-155): the same push repeated with it gets the
	// same version instead of a second one. Empty: the push journal's (a new one per push of
	// new content; the same one when an interrupted push of this content is repeated).
	RequestID string
}

// PushResult is the sealed version and what happened to each file.
type PushResult struct {
	Version *v1.ModelVersion
	Files   []TransferredFile
	Alias   string
	// The version was created by an earlier push of the same content that was interrupted
	// (found through the push journal), and this push finished it.
	ContinuedEarlierPush bool
}

// Push registers a file or a directory as a new, sealed version of model (`namespace/model`):
// hashes the files, creates the model (unless NoCreateModel) and a PENDING version, uploads the
// files ParallelFiles at a time (content the registry stores already is recorded without
// sending it), seals the version and points Alias at it.
func (c *Client) Push(ctx context.Context, model, source string, opts PushOptions) (*PushResult, error) {
	namespace, modelID, err := ParseModelRef(model)
	if err != nil {
		return nil, err
	}
	if opts.Alias != "" && !aliasID.MatchString(opts.Alias) {
		return nil, invalidName("%q is not an alias id", quoted(opts.Alias))
	}
	files, err := DescribeFiles(ctx, source, c.cfg.ParallelFiles)
	if err != nil {
		return nil, err
	}
	modelName := "namespaces/" + namespace + "/models/" + modelID
	if !opts.NoCreateModel {
		if err := c.ensureModel(ctx, namespace, modelID); err != nil {
			return nil, err
		}
	}
	draft := &v1.ModelVersion{Description: opts.Description, Metrics: opts.Metrics, Tags: opts.Tags}
	if len(opts.Params) > 0 {
		if draft.Params, err = structpb.NewStruct(opts.Params); err != nil {
			return nil, invalidName("params: %v", err)
		}
	}
	key := pushKey(modelName, draft, files)
	version, resumed, err := c.resumeOrCreate(ctx, key, files, func(requestID string) (*v1.ModelVersion, error) {
		if opts.RequestID != "" {
			requestID = opts.RequestID
		}
		return c.Metadata.CreateModelVersion(ctx, &v1.CreateModelVersionRequest{
			Parent: modelName, ModelVersion: draft, RequestId: requestID,
		})
	})
	if err != nil {
		return nil, err
	}
	transferred, err := c.UploadFiles(ctx, version, files)
	if err != nil {
		return nil, err
	}
	if version, err = c.Metadata.SealModelVersion(ctx, &v1.SealModelVersionRequest{Name: version.GetName()}); err != nil {
		return nil, err
	}
	if opts.Alias != "" {
		if _, err := c.Metadata.SetAlias(ctx, &v1.SetAliasRequest{
			Name: modelName + "/aliases/" + opts.Alias, ModelVersion: version.GetName(),
		}); err != nil {
			return nil, err
		}
		if version, err = c.Metadata.GetModelVersion(ctx, &v1.GetModelVersionRequest{Name: version.GetName()}); err != nil {
			return nil, err
		}
	}
	c.pushes.remove(key)
	return &PushResult{Version: version, Files: transferred, Alias: opts.Alias, ContinuedEarlierPush: resumed}, nil
}

// resumeOrCreate is the version this push works on, and whether an interrupted earlier push of
// the same content and metadata left it (the push journal remembers which version that was).
func (c *Client) resumeOrCreate(ctx context.Context, key string, files []LocalFile, create func(requestID string) (*v1.ModelVersion, error)) (*v1.ModelVersion, bool, error) {
	var note pushNote
	if c.pushes.load(key, &note) && note.Version != "" {
		earlier, err := c.Metadata.GetModelVersion(ctx, &v1.GetModelVersionRequest{Name: note.Version})
		switch {
		case err == nil && continuable(earlier, files):
			return earlier, true, nil
		case err != nil && !errors.Is(err, ErrNotFound):
			return nil, false, err
		}
	}
	if note.RequestID == "" {
		note.RequestID = newRequestID()
	}
	// Saved before the create: a create whose answer was lost is repeated with the same id.
	c.pushes.save(key, pushNote{RequestID: note.RequestID})
	version, err := create(note.RequestID)
	if err != nil {
		return nil, false, err
	}
	c.pushes.save(key, pushNote{RequestID: note.RequestID, Version: version.GetName()})
	return version, false, nil
}

// UploadFiles uploads every file the PENDING version's manifest lacks, ParallelFiles at a time,
// and reports each in the order given.
func (c *Client) UploadFiles(ctx context.Context, version *v1.ModelVersion, files []LocalFile) ([]TransferredFile, error) {
	present := map[string]string{}
	for _, f := range version.GetFiles() {
		present[f.GetPath()] = f.GetSha256()
	}
	var digests []string
	for _, f := range files {
		if present[f.Path] != f.SHA256 {
			digests = append(digests, f.SHA256)
		}
	}
	stored := map[string]bool{}
	if len(digests) > 0 {
		var err error
		if stored, err = c.StoredBlobs(ctx, version.GetName(), digests); err != nil {
			return nil, err
		}
	}
	out := make([]TransferredFile, len(files))
	group, ctx := errgroup.WithContext(ctx)
	group.SetLimit(c.cfg.ParallelFiles)
	for i, file := range files {
		group.Go(func() error {
			if present[file.Path] == file.SHA256 {
				out[i] = c.report(file, OutcomeAlreadyPresent, 0, "", file.SizeBytes, 0)
				c.forget(version.GetName(), file) // a session that finished before a kill
				return nil
			}
			report, err := c.UploadFile(ctx, version.GetName(), file, stored[file.SHA256], false)
			out[i] = report
			return err
		})
	}
	return out, group.Wait()
}

func (c *Client) ensureModel(ctx context.Context, namespace, model string) error {
	name := "namespaces/" + namespace + "/models/" + model
	if _, err := c.Metadata.GetModel(ctx, &v1.GetModelRequest{Name: name}); !errors.Is(err, ErrNotFound) {
		return err
	}
	_, err := c.Metadata.CreateModel(ctx, &v1.CreateModelRequest{
		Parent: "namespaces/" + namespace, ModelId: model, Model: &v1.Model{},
	})
	if errors.Is(err, ErrAlreadyExists) { // a concurrent push created it in between
		return nil
	}
	return err
}
