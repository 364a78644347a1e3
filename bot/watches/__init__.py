"""Live watches: PromQL metrics per model, read into samples and judged by the detector."""
