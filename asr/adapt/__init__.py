"""`asr adapt`: fine-tune a model on one person's recordings, into a model used like any other.

    from asr.adapt.job import AdaptConfig, AdaptJob, adapt
    summary = adapt(AdaptJob(data="my_voice/", out="me.pt"), AdaptConfig())

    data.py        DATA read and checked, features computed once, batches drawn from memory
    vocabulary.py  the LM beside the model, the lexicon with the new words, weights tuned on held-out speech
    job.py         AdaptConfig and the job: split, train with early stopping, write the model

The package imports nothing at the top, so that `asr.adapt.data` can be used alone (asr.serve.app).
"""
