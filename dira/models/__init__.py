"""Networks: the torchvision ResNet encoder, the 2D U-Net around it, projection heads, the discriminator."""
