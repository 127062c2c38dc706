"""``brainlike datasets list | info NAME | fetch NAME``: the dataset registry from the shell."""

from __future__ import annotations

import ast


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "datasets",
        help="list, describe and fetch the named datasets",
        description="Named datasets with URLs and SHA-256 checksums. BRAINLIKE_DATA sets the data home; "
        "BRAINLIKE_DATA_MIRROR points at an offline folder used instead of the network.",
    )
    sub = p.add_subparsers(dest="datasets_command", metavar="ACTION")
    q = sub.add_parser("list", help="names, kinds, access and titles")
    q.add_argument("--kind", default=None,
                   help="only datasets of this kind (brain, stimuli, rdms, results, config)")
    q.set_defaults(func=run_list)
    q = sub.add_parser("info", help="description, citation, options and files of NAME")
    q.add_argument("name")
    q.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option deciding the files, e.g. session=210325")
    q.set_defaults(func=run_info)
    q = sub.add_parser("fetch", help="download (or find in the mirror) and verify the files of NAME")
    q.add_argument("name")
    q.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option deciding the files, e.g. session=210325")
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=run_fetch)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _options(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--option must be KEY=VALUE; got {pair!r}")
        k, v = pair.split("=", 1)
        try:
            out[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k] = v
        if k == "session":
            out[k] = str(v)
    return out


def run_list(args) -> int:
    from ..datasets import info, list_datasets

    for name in list_datasets(getattr(args, "kind", None)):
        d = info(name)
        print(f"{name:28s} {d.kind:8s} {d.access:12s} {d.title}")
    return 0


def run_info(args) -> int:
    from ..datasets import info
    from ..datasets._fetch import data_home, mirror_dir

    d = info(args.name)
    print(f"{d.name}: {d.title}\n")
    print(d.description)
    print(f"\ncitation: {d.citation}\nlicense:  {d.license}\nhome:     {d.homepage}\naccess:   {d.access}"
          f"\nkind:     {d.kind}")
    if d.options:
        print("options:")
        for k, (default, help_) in d.options.items():
            print(f"  {k} = {default!r}   {help_}")
    print(f"data home: {data_home()}   mirror: {mirror_dir() or '(none)'}")
    print("files:")
    for rf in d.file_list(**_options(args.option)):
        print(f"  {rf.path}\n    url:    {rf.url or '(none: ' + rf.note + ')'}\n"
              f"    sha256: {rf.sha256 or 'unknown (recorded and verified from the first download)'}")
    return 0


def run_fetch(args) -> int:
    from ..datasets import fetch

    paths = fetch(args.name, progress=not args.no_progress, **_options(args.option))
    for rel, p in paths.items():
        print(f"{rel}  ->  {p}  (verified)")
    return 0
