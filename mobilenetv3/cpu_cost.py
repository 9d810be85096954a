"""What MobileNetV3's training costs on a CPU (mobilenetv3/README.md, training throughput): the rule the wrappers'
estimate line uses. Time scales with the pixels of an image and the images trained; validation (no gradients)
is taken as three times as fast as training."""
import os

MEASURED_ON = "stock TF 1.15.5 on a 2-core AMD EPYC VM at 224x224 (mobilenetv3/README.md)"
IMAGES_PER_SECOND = {"small": 22.0, "large": 9.7}   # training, 224x224, batch 32
VALIDATION_SPEEDUP = 3.0
EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")


def count_images(folder):
    if not os.path.isdir(folder):
        return 0
    return sum(1 for _, _, names in os.walk(folder) for name in names if name.lower().endswith(EXTENSIONS))


def estimate(data_path="", model="small", image_size=224, epochs=20, max_step=0, batch=32, ranks=1):
    train = count_images(os.path.join(data_path, "train")) // ranks
    val = count_images(os.path.join(data_path, "validation")) or count_images(os.path.join(data_path, "eval"))
    steps_per_epoch = max(train // max(batch, 1), 1)
    steps = min(max_step, epochs * steps_per_epoch) if max_step else epochs * steps_per_epoch
    rate = IMAGES_PER_SECOND.get(model, IMAGES_PER_SECOND["small"]) * (224.0 / image_size) ** 2
    training = steps * batch / rate
    validation = -(-steps // steps_per_epoch) * val / (rate * VALIDATION_SPEEDUP)
    return [(training, "%d training steps of %d images" % (steps, batch)),
            (validation, "validation of %d images per epoch" % val)]
