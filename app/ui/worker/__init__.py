"""Work off the GUI thread: the inference worker (models live only there), its controller, saliency requests, volume loading."""
