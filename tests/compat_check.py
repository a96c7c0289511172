"""Loads saved multitask folders the way a Hub user does, on whatever transformers this interpreter has.

Run by tests/test_cross_version.py in virtual environments holding only torch and one transformers release (no
polyhead): `python compat_check.py OUT_JSON TEXTS_JSON FOLDER_OR_REPO [...]`. For every folder (or Hub repo id, with
`--revision`) it loads config, model, tokenizer and the pipeline with `trust_remote_code=True`, runs them, saves the
model and tokenizer again to `<OUT_JSON>.resaved/<n>` and runs the pipeline on the re-saved folder, and builds the
pipeline from the loaded model object too. It imports nothing from this project.
"""

import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoModel, AutoTokenizer, pipeline


def answers(classifier, texts):
    return classifier(texts, top_k=None, threshold=0.0, batch_size=2)


def check(source, texts, resave_dir, revision):
    hub = {"revision": revision} if revision else {}
    config = AutoConfig.from_pretrained(source, trust_remote_code=True, **hub)
    model = AutoModel.from_pretrained(source, trust_remote_code=True, **hub).eval()
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=True, **hub)
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    classifier = pipeline("multitask-classification", model=source, trust_remote_code=True, **hub)
    from_object = pipeline(
        "multitask-classification", model=model, tokenizer=tokenizer
    )  # the model's code registers it
    model.save_pretrained(resave_dir)
    tokenizer.save_pretrained(resave_dir)
    resaved = pipeline("multitask-classification", model=str(resave_dir), trust_remote_code=True)
    # A model with multiple-choice tasks: one multiple-choice input too (the texts as its choices).
    choices = [{"text": texts[0], "choices": texts}] if "multiple_choice" in str(config.tasks) else None
    return {
        "choices": choices and [classifier(choices, top_k=None), resaved(choices, top_k=None)],
        "config_class": type(config).__module__ + "." + type(config).__name__,
        "encoder_type": config.encoder.model_type,
        "tasks": config.tasks,
        # As saved again (in memory, 4.x prefixes code loaded from a Hub repo with "<repo id>--").
        "custom_pipelines": json.loads((resave_dir / "config.json").read_text())["custom_pipelines"],
        "logits": {task: value.tolist() for task, value in logits.items()},
        "pipeline": answers(classifier, texts),
        "object_pipeline": answers(from_object, texts),
        "tokenizer_class": type(tokenizer).__name__,
        "resaved_dir": str(resave_dir),
        # What a tokenizer saved on this release names itself: every release must be able to load it.
        "resaved_tokenizer_class": json.loads((resave_dir / "tokenizer_config.json").read_text())["tokenizer_class"],
        "resaved_pipeline": answers(resaved, texts),
    }


def main(argv):
    revision = None
    if "--revision" in argv:
        index = argv.index("--revision")
        revision = argv[index + 1]
        argv = argv[:index] + argv[index + 2 :]
    out, texts, sources = Path(argv[0]), json.loads(argv[1]), argv[2:]
    resave_root = Path(f"{out}.resaved")
    results = {source: check(source, texts, resave_root / str(n), revision) for n, source in enumerate(sources)}
    out.write_text(json.dumps({"transformers": transformers.__version__, "results": results}))


if __name__ == "__main__":
    main(sys.argv[1:])
