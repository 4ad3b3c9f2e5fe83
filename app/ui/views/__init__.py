"""The pictures: the three plane views and what is drawn over them (crosshair, saliency, mask), the scrubber and the score plot."""
