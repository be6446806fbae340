"""Exporters (PyTorch needed): a DiffusionGemma checkpoint -> an ONNX Runtime model folder."""

from .onnx import ExportReport, export_onnx

__all__ = ["ExportReport", "export_onnx"]
