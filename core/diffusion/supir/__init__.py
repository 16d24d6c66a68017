"""SUPIR: diffusion super-resolution with an SDXL base, a control adapter that reads the
low-quality picture, and a restoration-guided sampler (core/diffusion/supir/pipeline.py)."""
