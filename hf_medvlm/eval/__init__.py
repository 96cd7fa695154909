"""Evaluation: medical VQA metrics (two named protocols), multiple choice, batched generation.

Every score this package prints or writes names its protocol (`llava_med`, `strict`, `huatuo_mc`): the same answers
give very different numbers under different protocols, and the papers' numbers are only comparable within one.
"""
