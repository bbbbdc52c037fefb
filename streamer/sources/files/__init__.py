"""The S3 file source's building blocks: object formats (pure) and the bucket client.

`formats` turns one object's bytes into `SourceRow`s and `Rejection`s (no boto3); `s3`
is the only module that talks to the bucket. Neither imports boto3 or pyarrow at import
time, so `streamer` works without the `files` extra installed.
"""
