"""A Hub-compatible HTTP server for tests: enough of the Hugging Face Hub's protocol for the unmodified
`huggingface_hub` client (and so `transformers`) to create repos and branches, upload in one commit (regular files
inline, large files through the LFS batch API), list trees, commits and refs, and download files.

No real Hub is reachable from CI and no self-hostable one installs offline, so the tests start this one on 127.0.0.1:

    server = HubServer(tmp_path)
    url = server.start()          # http://127.0.0.1:<port>
    ...                           # HfApi(endpoint=url), or HF_ENDPOINT=url in a new process
    server.stop()

What it implements, with the Hub's status codes and `X-Error-Code` headers (which `huggingface_hub` turns into
`RepositoryNotFoundError`, `RevisionNotFoundError` and `EntryNotFoundError`):

- `POST /api/repos/create` (409 when the repo exists), `GET /api/models/{repo}[/revision/{rev}]` (model info),
  `POST /api/models/{repo}/branch/{branch}` (409 when it exists), `GET /api/models/{repo}/refs`,
  `GET /api/models/{repo}/commits/{rev}`, `GET /api/whoami-v2`, `POST /api/validate-yaml` (parses the card's YAML);
- `POST /api/models/{repo}/preupload/{rev}` (large and binary files go through LFS, as with the Hub's default
  `.gitattributes`), `POST /{repo}.git/info/lfs/objects/batch` with `PUT` upload and `POST` verify URLs, and
  `POST /api/models/{repo}/commit/{rev}` (ndjson: header, file, lfsFile, deletedFile, deletedFolder), applied
  atomically: a commit that names a missing LFS object or a stale parent is refused and changes nothing;
- `GET /api/models/{repo}/tree/{rev}[/{path}]` and `POST /api/models/{repo}/paths-info/{rev}`;
- `HEAD`/`GET /{repo}/resolve/{rev}/{path}` with `ETag`, `X-Repo-Commit`, `X-Linked-Etag`/`X-Linked-Size` for LFS
  files and `Content-Length`.

Private repos answer 404 `RepoNotFound` to requests without a token, as the Hub does. Faults for tests:
`fail_next_commit = True` makes the next commit fail with a 500 after its files were uploaded (to test that a failed
publish claims nothing); `drop_next_commit_response = True` applies the next commit, then closes the connection
without answering (the commit landed, the client never heard), `stop_after_next_commit = True` also shuts the server
down (nobody left to ask whether it landed); `interleave_next_commit = True` lands another client's commit on the
branch just before the next commit is applied (a concurrent commit); `fail_lfs_upload = 401` answers the next LFS
upload with that status; `stop_on_lfs_upload = True` shuts the whole server down when an LFS upload arrives (server
gone).
Repos live in memory, LFS objects on disk under the given folder. Datasets and spaces use the same code paths.
"""

import base64
import contextlib
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import yaml


REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
# The Hub's default .gitattributes sends these to LFS; binary files and files over 10 MB go there too.
LFS_PATTERNS = re.compile(
    r".*\.(7z|arrow|bin|bz2|ckpt|ftz|gz|h5|joblib|mlmodel|model|msgpack|npy|npz|onnx|ot|parquet|pb|pickle|pkl|pt|pth"
    r"|rar|safetensors|tar|tflite|tgz|wasm|xz|zip|zst|png|jpg|jpeg)$"
)
LFS_SIZE = 10 * 1024 * 1024
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"
USER = "test-user"
_INTERNAL = object()  # the tests' own inspection calls see private repos without a token


def git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class Entry:
    """A file in a commit: its git oid and size, and for LFS files the sha256 of the content."""

    oid: str
    size: int
    sha256: str | None = None  # LFS files only
    content: bytes | None = None  # regular files only


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, Entry]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


@contextlib.contextmanager
def serving(root: str | Path):
    """Starts a [`HubServer`] in `root` for this process's `huggingface_hub` client and stops it afterwards.

    The client read `HF_HUB_OFFLINE` (set by the tests' conftest) and `HF_HUB_DISABLE_XET` when it was imported, so
    its constants are switched to online, without Xet, while the server runs."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE, constants.HF_HUB_DISABLE_XET
    constants.HF_HUB_OFFLINE, constants.HF_HUB_DISABLE_XET = False, True
    server = HubServer(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        constants.HF_HUB_OFFLINE, constants.HF_HUB_DISABLE_XET = saved


class HubServer:
    """The server state and its thread; see the module docstring."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        (self.root / "lfs").mkdir(parents=True, exist_ok=True)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.RLock()
        self.fail_next_commit = False
        self.drop_next_commit_response = False
        self.stop_after_next_commit = False
        self.interleave_next_commit = False
        self.gone = False
        self.fail_lfs_upload: int | None = None
        self.stop_on_lfs_upload = False
        self.requests: list[tuple[str, str]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- lifecycle --------------------------------------------------------------------------------------------------

    def start(self) -> str:
        server, self.gone = self, False

        class Handler(_Handler):
            hub = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self.gone = True  # open keep-alive connections get no more answers either
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    # -- inspection helpers for tests ---------------------------------------------------------------------------------

    def commits(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> list[str]:
        """Commit oids reachable from `revision`, newest first."""
        with self.lock:
            repo = self._repo(repo_type, repo_id)
            commit = self._resolve(repo, revision)
            history = []
            while commit is not None:
                history.append(commit.oid)
                commit = repo.commits.get(commit.parent) if commit.parent else None
            return history

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        """Every file at `revision`, with its content."""
        with self.lock:
            commit = self._resolve(self._repo(repo_type, repo_id), revision)
            return {path: self._content(entry) for path, entry in commit.files.items()}

    def lfs_objects(self) -> set[str]:
        return {path.name for path in (self.root / "lfs").iterdir()}

    # -- state --------------------------------------------------------------------------------------------------------

    def _repo(self, repo_type: str, repo_id: str, token: object = _INTERNAL) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and token is None):
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def _resolve(self, repo: Repo, revision: str) -> Commit:
        oid = repo.branches.get(revision, revision)
        if oid not in repo.commits:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[oid]

    def _content(self, entry: Entry) -> bytes:
        if entry.sha256 is None:
            return entry.content or b""
        return (self.root / "lfs" / entry.sha256).read_bytes()

    def _new_commit(self, repo: Repo, parent: Commit | None, title: str, message: str, files: dict[str, Entry]):
        date = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        listing = json.dumps(sorted((path, entry.oid) for path, entry in files.items()))
        seed = f"{parent.oid if parent else ''}\n{title}\n{message}\n{date}\n{len(repo.commits)}\n{listing}"
        commit = Commit(
            hashlib.sha1(seed.encode()).hexdigest(), parent.oid if parent else None, title, message, date, files
        )
        repo.commits[commit.oid] = commit
        return commit


def _entry_json(path: str, entry: Entry, commit: Commit) -> dict:
    info = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
    if entry.sha256 is not None:
        info["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": 134}
    info["lastCommit"] = {"id": commit.oid, "title": commit.title, "date": commit.date}
    return info


def _folder_json(path: str) -> dict:
    return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}


def _folders(files) -> set[str]:
    return {"/".join(path.split("/")[:depth]) for path in files for depth in range(1, path.count("/") + 1)}


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet: pytest shows failures, not access logs
        pass

    # -- plumbing -----------------------------------------------------------------------------------------------------

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        self.body = self._read_body() if method in ("POST", "PUT") else b""
        self.hub.requests.append((method, split.path))
        if self.hub.gone:
            self.close_connection = True
            return
        if method == "PUT" and split.path.startswith("/_lfs/") and self.hub.stop_on_lfs_upload:
            self.close_connection = True  # no answer, and nobody listening any more (serve_forever runs elsewhere)
            self.hub.stop()
            return
        try:
            with self.hub.lock:
                self._route(method, split.path)
        except HubError as error:
            headers = {"X-Error-Message": error.message}
            if error.code:
                headers["X-Error-Code"] = error.code
            self._send(error.status, {"error": error.message}, headers=headers, method=method)
        except Exception as error:  # a bug in this server: say so instead of hanging the client
            self._send(500, {"error": f"test server error: {error!r}"}, method=method)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload=None, headers: dict | None = None, method: str = "GET", raw=None, ctype=None):
        body = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
        self.send_response(status)
        self.send_header("Content-Type", ctype or "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        return auth[len("Bearer ") :] if auth.startswith("Bearer ") and len(auth) > len("Bearer ") else None

    def _json(self):
        try:
            return json.loads(self.body or b"{}")
        except json.JSONDecodeError as error:
            raise HubError(400, f"invalid JSON body: {error}") from error

    # -- routes -------------------------------------------------------------------------------------------------------

    def _route(self, method: str, path: str) -> None:
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "whoami-v2"]:
            return self._whoami()
        if parts[:2] == ["api", "validate-yaml"] and method == "POST":
            return self._validate_yaml()
        if parts[:3] == ["api", "repos", "create"] and method == "POST":
            return self._create_repo()
        if parts[0] == "_lfs" and len(parts) == 3:
            return self._lfs_upload(method, parts[1], parts[2])
        if parts[0] == "api" and len(parts) >= 4 and parts[1] in REPO_TYPES:
            repo_type, repo_id, rest = REPO_TYPES[parts[1]], f"{parts[2]}/{parts[3]}", parts[4:]
            return self._api(method, repo_type, unquote(repo_id), rest)
        repo_type = "model"
        if parts and parts[0] in ("datasets", "spaces"):
            repo_type, parts = REPO_TYPES[parts[0]], parts[1:]
        if len(parts) >= 2 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(repo_type, f"{parts[0]}/{parts[1][:-4]}")
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            repo = self.hub._repo(repo_type, f"{parts[0]}/{parts[1]}", self._token())
            return self._resolve_file(method, repo, unquote(parts[3]), unquote("/".join(parts[4:])))
        raise HubError(404, f"no route for {method} {path}")

    def _api(self, method: str, repo_type: str, repo_id: str, rest: list[str]) -> None:
        hub, token = self.hub, self._token()
        op = rest[0] if rest else ""
        revision = unquote(rest[1]) if len(rest) > 1 else "main"
        if op == "" or op == "revision":
            return self._repo_info(hub._repo(repo_type, repo_id, token), revision)
        repo = hub._repo(repo_type, repo_id, token)
        if op == "branch" and method == "POST":
            return self._create_branch(repo, revision)
        if op == "refs":
            branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": o} for n, o in repo.branches.items()]
            return self._send(200, {"branches": branches, "converts": [], "tags": []})
        if op == "commits":
            return self._list_commits(repo, revision)
        if op == "tree":
            return self._tree(repo, revision, unquote("/".join(rest[2:])))
        if op == "paths-info" and method == "POST":
            return self._paths_info(repo, revision)
        if op == "preupload" and method == "POST":
            return self._preupload(repo, revision)
        if op == "commit" and method == "POST":
            return self._commit(repo, revision)
        raise HubError(404, f"no route for {method} /api/{repo_type}s/{repo_id}/{'/'.join(rest)}")

    def _whoami(self) -> None:
        if self._token() is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        self._send(200, {"type": "user", "name": USER, "orgs": [], "auth": {"accessToken": {"role": "write"}}})

    def _validate_yaml(self) -> None:
        content = self._json().get("content", "")
        match = re.match(r"^---\n(.*?)\n---\n", content, re.DOTALL)
        try:
            if match:
                yaml.safe_load(match.group(1))
        except yaml.YAMLError as error:
            return self._send(400, {"errors": [{"message": str(error)}], "warnings": []})
        self._send(200, {"errors": [], "warnings": []})

    def _create_repo(self) -> None:
        payload = self._json()
        name, organization = payload.get("name"), payload.get("organization")
        repo_type = payload.get("type") or "model"
        if not name or not re.fullmatch(r"[\w.-]+", name):
            raise HubError(400, f"invalid repo name {name!r}")
        repo_id = f"{organization or USER}/{name}"
        url = f"{self.hub.url}/{URL_PREFIXES[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self.hub.repos:  # the Hub's 409 body names the existing repo's URL
            message = f"You already created this {repo_type} repo"
            return self._send(409, {"error": message, "url": url}, headers={"X-Error-Message": message})
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        repo = Repo(repo_type, repo_id, private)
        first = {".gitattributes": Entry(git_blob_oid(GITATTRIBUTES), len(GITATTRIBUTES), content=GITATTRIBUTES)}
        repo.branches["main"] = self.hub._new_commit(repo, None, "initial commit", "", first).oid
        self.hub.repos[(repo_type, repo_id)] = repo
        self._send(200, {"url": url, "name": repo_id, "id": repo_id})

    def _repo_info(self, repo: Repo, revision: str) -> None:
        commit = self.hub._resolve(repo, revision)
        siblings = [{"rfilename": path, "size": entry.size} for path, entry in sorted(commit.files.items())]
        self._send(
            200,
            {
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": commit.oid,
                "lastModified": commit.date,
                "private": repo.private,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
            },
        )

    def _create_branch(self, repo: Repo, branch: str) -> None:
        if branch in repo.branches:
            raise HubError(409, f"Reference refs/heads/{branch} already exists")
        start = self._json().get("startingPoint") or "main"
        repo.branches[branch] = self.hub._resolve(repo, start).oid
        self._send(200, {})

    def _list_commits(self, repo: Repo, revision: str) -> None:
        commit, history = self.hub._resolve(repo, revision), []
        while commit is not None:
            history.append(
                {
                    "id": commit.oid,
                    "title": commit.title,
                    "message": commit.message,
                    "authors": [{"user": USER}],
                    "date": commit.date,
                }
            )
            commit = repo.commits.get(commit.parent) if commit.parent else None
        self._send(200, history)

    def _tree(self, repo: Repo, revision: str, folder: str) -> None:
        commit = self.hub._resolve(repo, revision)
        recursive = (self.query.get("recursive") or ["false"])[0].lower() in ("1", "true")
        prefix = f"{folder}/" if folder else ""
        folders = _folders(commit.files)
        if folder and folder not in folders:
            raise HubError(404, f"{folder} does not exist on {revision}", "EntryNotFound")

        def listed(path: str) -> bool:
            return path.startswith(prefix) and (recursive or "/" not in path[len(prefix) :])

        items = [_folder_json(path) for path in sorted(folders) if listed(path)]
        items += [_entry_json(p, e, commit) for p, e in sorted(commit.files.items()) if listed(p)]
        self._send(200, items)

    def _paths_info(self, repo: Repo, revision: str) -> None:
        commit = self.hub._resolve(repo, revision)
        content_type = self.headers.get("Content-Type") or ""
        if "json" in content_type:
            paths = self._json().get("paths", [])
        else:
            paths = parse_qs(self.body.decode()).get("paths", [])
        folders, items = _folders(commit.files), []
        for path in paths:
            if path in commit.files:
                items.append(_entry_json(path, commit.files[path], commit))
            elif path in folders:
                items.append(_folder_json(path))
        self._send(200, items)

    def _preupload(self, repo: Repo, revision: str) -> None:
        commit = self.hub._resolve(repo, revision) if revision in repo.branches else None
        files = []
        for item in self._json().get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            lfs = bool(LFS_PATTERNS.match(item["path"])) or item["size"] >= LFS_SIZE or b"\0" in sample
            info = {"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
            existing = commit.files.get(item["path"]) if commit else None
            if existing is not None:
                info["oid"] = existing.sha256 or existing.oid
            files.append(info)
        self._send(200, {"files": files, "commitOid": commit.oid if commit else None})

    def _lfs_batch(self, repo_type: str, repo_id: str) -> None:
        self.hub._repo(repo_type, repo_id, self._token())
        payload = self._json()
        if payload.get("operation") != "upload":
            raise HubError(400, "only uploads are supported")
        objects = []
        for item in payload.get("objects", []):
            oid, size = item["oid"], item["size"]
            answer = {"oid": oid, "size": size}
            if not (self.hub.root / "lfs" / oid).is_file():
                answer["actions"] = {
                    "upload": {"href": f"{self.hub.url}/_lfs/{oid}/{size}"},
                    "verify": {"href": f"{self.hub.url}/_lfs/{oid}/verify"},
                }
            objects.append(answer)
        self._send(200, {"transfer": "basic", "objects": objects}, ctype="application/vnd.git-lfs+json")

    def _lfs_upload(self, method: str, oid: str, action: str) -> None:
        if method == "PUT" and self.hub.fail_lfs_upload is not None:
            status, self.hub.fail_lfs_upload = self.hub.fail_lfs_upload, None
            raise HubError(status, f"LFS upload refused with {status} (simulated by the test server)")
        path = self.hub.root / "lfs" / oid
        if action == "verify" and method == "POST":
            if not path.is_file():
                raise HubError(404, f"LFS object {oid} was not uploaded")
            return self._send(200, {})
        if method != "PUT":
            raise HubError(405, "LFS objects are uploaded with PUT")
        if hashlib.sha256(self.body).hexdigest() != oid or len(self.body) != int(action):
            raise HubError(400, f"LFS object {oid}: content does not match its sha256 or size")
        temporary = path.with_suffix(".part")
        temporary.write_bytes(self.body)
        temporary.replace(path)
        self._send(200, {})

    def _commit(self, repo: Repo, revision: str) -> None:
        if revision not in repo.branches:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        if self.hub.interleave_next_commit:
            self.hub.interleave_next_commit = False
            other = repo.commits[repo.branches[revision]]
            marker = {"CONCURRENT.md": Entry(git_blob_oid(b"x"), 1, content=b"x")}
            repo.branches[revision] = self.hub._new_commit(repo, other, "concurrent", "", other.files | marker).oid
        parent = repo.commits[repo.branches[revision]]
        lines = [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), None)
        if header is None or not header.get("summary"):
            raise HubError(400, "a commit needs a header with a summary")
        if header.get("parentCommit") and header["parentCommit"] != parent.oid:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(parent.files)
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                content = (
                    base64.b64decode(value["content"])
                    if value.get("encoding") == "base64"
                    else (value["content"].encode())
                )
                files[value["path"]] = Entry(git_blob_oid(content), len(content), content=content)
            elif key == "lfsFile":
                blob = self.hub.root / "lfs" / value["oid"]
                if not blob.is_file():
                    raise HubError(422, f"LFS object {value['oid']} for {value['path']} was never uploaded")
                pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{value['oid']}\nsize "
                pointer += f"{blob.stat().st_size}\n"
                files[value["path"]] = Entry(git_blob_oid(pointer.encode()), blob.stat().st_size, value["oid"])
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {path: entry for path, entry in files.items() if not path.startswith(prefix)}
            elif key != "header":
                raise HubError(400, f"unknown commit operation {key!r}")
        if self.hub.fail_next_commit:
            self.hub.fail_next_commit = False
            raise HubError(500, "Internal error while committing (simulated by the test server)")
        commit = self.hub._new_commit(repo, parent, header["summary"], header.get("description", ""), files)
        repo.branches[revision] = commit.oid
        if self.hub.drop_next_commit_response or self.hub.stop_after_next_commit:
            self.hub.drop_next_commit_response = False
            self.close_connection = True  # committed, but the client never hears the answer
            if self.hub.stop_after_next_commit:
                self.hub.stop_after_next_commit = False
                self.hub.stop()
            return
        url = f"{self.hub.url}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}/commit/{commit.oid}"
        self._send(200, {"success": True, "commitOid": commit.oid, "commitUrl": url, "pullRequestUrl": None})

    def _resolve_file(self, method: str, repo: Repo, revision: str, path: str) -> None:
        commit = self.hub._resolve(repo, revision)
        entry = commit.files.get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{entry.sha256 or entry.oid}"', "Accept-Ranges": "none"}
        if entry.sha256 is not None:
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
        content = self.hub._content(entry)
        self._send(200, headers=headers, method=method, raw=content, ctype="application/octet-stream")
