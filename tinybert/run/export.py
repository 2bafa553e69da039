"""Export a trained run's encoder as a sentence-transformers model.

    python -m tinybert.run.export runs/full exported/    # then SentenceTransformer("exported/")

The folder is a Hugging Face BERT folder (what ``python -m tinybert.convert --to-hf`` writes,
so transformers' ``BertModel.from_pretrained`` reads it too) plus the three small files
sentence-transformers reads to stack its modules: ``modules.json`` (Transformer, then
Pooling), ``sentence_bert_config.json`` (the run's --max_len) and ``1_Pooling/config.json``
(mean pooling over the non-padding tokens, as tinybert's masked_mean). A sentence's embedding
is then exactly what a --cos run compares with the cosine.
"""
import argparse
import json
import os
import sys

from .. import convert
from . import files
from .predict import model_folder, read_settings

MODULES = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
           {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]


def export_sentence_transformers(run, dst, overwrite=False):
    """RUN (or RUN/model) -> a sentence-transformers folder at ``dst``. Returns a warning
    line when the run was not trained with --cos (its embeddings were never trained to be
    compared by cosine), else None."""
    source = model_folder(run)
    settings = read_settings(source)
    config = convert._read_config(source)[0]

    def write_pooling(folder):
        files.write_text(os.path.join(folder, "modules.json"), json.dumps(MODULES, indent=2))
        files.write_text(os.path.join(folder, "sentence_bert_config.json"),
                      json.dumps({"max_seq_length": settings["max_len"], "do_lower_case": False}, indent=2))
        files.write_text(os.path.join(folder, "1_Pooling", "config.json"), json.dumps({
            "word_embedding_dimension": config.hidden_size, "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False}, indent=2))
    convert.export_hf_folder(source, dst, overwrite=overwrite, extra_files=write_pooling)
    if not settings["cos"]:
        return (f"{source}: trained without --cos, so its mean-pooled embeddings were not trained "
                "for cosine similarity")
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinybert.run.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run folder (runs/NAME) or its model/ folder")
    parser.add_argument("dst", help="the sentence-transformers folder to write (new, or empty)")
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it is not empty")
    args = parser.parse_args(argv)
    try:
        warning = export_sentence_transformers(args.run, args.dst, args.overwrite)
    except (OSError, KeyError, ValueError) as error:
        sys.exit(f"export: {error.args[0] if isinstance(error, KeyError) else error}")
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {args.dst}")


if __name__ == "__main__":
    main()
