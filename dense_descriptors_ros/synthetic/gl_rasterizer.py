"""Headless OpenGL rasterizer (moderngl on EGL, e.g. Mesa llvmpipe) for textured meshes seen by a pinhole camera.

One render gives, per pixel, the shaded colour, the metric depth (camera z, float32, exact at pixel centres:
perspective-correct interpolation of z is exact on planar triangles) and the instance id of the visible mesh
(0 where no mesh). Camera frames follow the optical convention (x right, y down, z forward), pixel centres sit at
integer coordinates, and ``T_cam_obj`` maps object points into the camera frame.

Colour is supersampled (rendered ``supersample`` times larger and box-filtered) for anti-aliased edges; depth and
ids come from a pass at the native resolution so that they are exact at the pixel centres. The background image
is composited on the CPU with the anti-aliased coverage.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from dense_descriptors_ros.synthetic.render_assets import ObjectModel

_VERTEX_SHADER = """
#version 330
uniform mat4 u_projection;   // optical camera frame -> clip space
uniform mat4 u_cam_obj;      // object -> camera
in vec3 in_position;
in vec3 in_normal;
in vec2 in_uv;
out vec3 v_cam;
out vec3 v_normal;
out vec2 v_uv;
void main() {
    vec4 cam = u_cam_obj * vec4(in_position, 1.0);
    v_cam = cam.xyz;
    v_normal = mat3(u_cam_obj) * in_normal;
    v_uv = in_uv;
    gl_Position = u_projection * cam;
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform sampler2D u_texture;
uniform vec3 u_light_direction;  // unit vector towards the light, camera frame
uniform vec3 u_light_colour;
uniform float u_ambient;
uniform float u_specular;
uniform float u_instance;
in vec3 v_cam;
in vec3 v_normal;
in vec2 v_uv;
layout(location = 0) out vec4 f_colour;
layout(location = 1) out vec2 f_depth_id;
void main() {
    vec3 n = normalize(v_normal);
    vec3 view = normalize(-v_cam);
    if (dot(n, view) < 0.0) n = -n;  // two-sided lighting
    vec3 albedo = texture(u_texture, v_uv).rgb;
    float diffuse = max(dot(n, u_light_direction), 0.0);
    float highlight = diffuse > 0.0 ? pow(max(dot(n, normalize(u_light_direction + view)), 0.0), 32.0) : 0.0;
    vec3 colour = albedo * (u_ambient + (1.0 - u_ambient) * diffuse) * u_light_colour
                + u_specular * highlight * u_light_colour;
    f_colour = vec4(clamp(colour, 0.0, 1.0), 1.0);
    f_depth_id = vec2(v_cam.z, u_instance);
}
"""


class RendererUnavailable(RuntimeError):
    """No headless OpenGL context could be created (no EGL / Mesa on this machine)."""


_THREAD_CONTEXTS = threading.local()


def _load_llvm_users_first() -> None:
    """Import triton (PyTorch's kernel compiler, pulled in by torchvision) before Mesa's EGL driver loads.

    Both bundle LLVM; when Mesa's llvmpipe is loaded first, a later ``import torchvision`` segfaults inside
    triton (seen with torch 2.14 and Mesa on Debian 12).
    """
    with contextlib.suppress(ImportError):
        import triton  # noqa: F401


def gl_context():
    """This thread's headless moderngl context (EGL backend), created on first use.

    One per thread: an OpenGL context is current in one thread only, and callers (tests, node workers) may render
    from worker threads.
    """
    context = getattr(_THREAD_CONTEXTS, "context", None)
    if context is None:
        _load_llvm_users_first()
        try:
            import moderngl

            context = moderngl.create_standalone_context(backend="egl", require=330)
        except Exception as exc:  # moderngl raises plain Exceptions for a missing libEGL / driver
            raise RendererUnavailable(
                f"cannot create a headless OpenGL 3.3 context with moderngl's EGL backend ({exc}); "
                "install moderngl and Mesa's EGL (Debian: libegl1 libgl1-mesa-dri)"
            ) from exc
        _THREAD_CONTEXTS.context = context
    return context


def renderer_available() -> tuple[bool, str]:
    """(True, renderer name) when a headless GL context works here, else (False, the reason)."""
    try:
        return True, gl_context().info["GL_RENDERER"]
    except RendererUnavailable as exc:
        return False, str(exc)


def projection_from_intrinsics(K: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """4x4 OpenGL projection for optical camera coordinates, so that the image read back (rows flipped to top
    first) has pixel (u, v) = (fx X/Z + s Y/Z + cx, fy Y/Z + cy) at its pixel centre (integer coordinates)."""
    fx, s, cx, fy, cy = K[0, 0], K[0, 1], K[0, 2], K[1, 1], K[1, 2]
    P = np.zeros((4, 4))
    # ndc_x = (2u + 1)/W - 1 and ndc_y = 1 - (2v + 1)/H (window rows count from the bottom).
    P[0] = [2 * fx / width, 2 * s / width, (2 * cx + 1) / width - 1, 0]
    P[1] = [0, -2 * fy / height, 1 - (2 * cy + 1) / height, 0]
    P[2] = [0, 0, (far + near) / (far - near), -2 * far * near / (far - near)]
    P[3] = [0, 0, 1, 0]
    return P


def supersampled_intrinsics(K: np.ndarray, factor: int) -> np.ndarray:
    """Intrinsics of the image ``factor`` times larger whose factor x factor blocks average to the pixels of K."""
    K_fine = np.asarray(K, np.float64).copy()
    K_fine[:2] *= factor
    K_fine[:2, 2] += (factor - 1) / 2
    K_fine[2] = [0, 0, 1]
    return K_fine


@dataclass
class Lighting:
    """A directional light: ``direction`` (towards the light, camera frame), colour gain and ambient share."""

    direction: tuple[float, float, float] = (0.3, -0.5, -0.8)
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ambient: float = 0.4


@dataclass
class RenderedView:
    """``rgb`` uint8 (H, W, 3); ``depth`` float32 (H, W) camera z in metres, 0 where no mesh;
    ``instance_ids`` uint8 (H, W): k + 1 where instance k of the render call is visible, 0 elsewhere."""

    rgb: np.ndarray
    depth: np.ndarray
    instance_ids: np.ndarray


class MeshRasterizer:
    """Renders textured ObjectModels with the shared EGL context. Use as a context manager (or call release()).

    >>> with MeshRasterizer(320, 240) as raster:
    ...     drill = raster.add_model(make_object("drill"))
    ...     view = raster.render(K, [(drill, T_cam_obj)], Lighting(), background)
    """

    def __init__(self, width: int, height: int, supersample: int = 2, near: float = 0.02, far: float = 100.0) -> None:
        if width < 8 or height < 8:
            raise ValueError(f"image size must be at least 8 x 8, got {width} x {height}")
        if not 1 <= supersample <= 4:
            raise ValueError(f"supersample must be 1..4, got {supersample}")
        if not 0 < near < far:
            raise ValueError(f"need 0 < near < far, got near={near}, far={far}")
        import moderngl

        self._gl = moderngl
        self.width, self.height, self.supersample, self.near, self.far = width, height, supersample, near, far
        self.ctx = gl_context()
        self.program = self.ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        self._models: list[tuple[object, object, object, float]] = []  # (vao, vbo, texture, specular)
        self._resources: list = []
        # Native-resolution pass: colour (unused there) + depth/id; colour pass at the supersampled size.
        self._data_fbo = self._framebuffer(width, height, with_depth_id=True)
        fine = (width * supersample, height * supersample)
        self._colour_fbo = self._framebuffer(*fine, with_depth_id=False) if supersample > 1 else self._data_fbo

    def _framebuffer(self, width: int, height: int, with_depth_id: bool):
        colour = [self.ctx.texture((width, height), 4)]
        if with_depth_id:
            colour.append(self.ctx.texture((width, height), 2, dtype="f4"))
        depth = self.ctx.depth_renderbuffer((width, height))
        fbo = self.ctx.framebuffer(color_attachments=colour, depth_attachment=depth)
        self._resources += [*colour, depth, fbo]
        return fbo

    def add_model(self, model: ObjectModel) -> int:
        """Upload a model's mesh and texture; returns the handle to use in render()."""
        mesh = model.mesh
        vertices = np.hstack([mesh.positions, mesh.normals, mesh.uvs]).astype("f4")
        vbo = self.ctx.buffer(vertices.tobytes())
        vao = self.ctx.vertex_array(self.program, [(vbo, "3f 3f 2f", "in_position", "in_normal", "in_uv")])
        texture_image = np.ascontiguousarray(model.texture, dtype=np.uint8)
        if texture_image.ndim != 3 or texture_image.shape[2] != 3:
            raise ValueError(f"model {model.name!r}: texture must be (H, W, 3) uint8, got {texture_image.shape}")
        th, tw = texture_image.shape[:2]
        texture = self.ctx.texture((tw, th), 3, texture_image.tobytes(), alignment=1)
        texture.build_mipmaps()
        texture.filter = (self._gl.LINEAR_MIPMAP_LINEAR, self._gl.LINEAR)
        self._resources += [vbo, vao, texture]
        self._models.append((vao, vbo, texture, float(model.specular)))
        return len(self._models) - 1

    def _draw(
        self,
        fbo,
        K: np.ndarray,
        width: int,
        height: int,
        instances: Sequence[tuple[int, np.ndarray]],
        lighting: Lighting,
    ) -> None:
        fbo.use()
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        self.ctx.enable(self._gl.DEPTH_TEST)
        self.ctx.disable(self._gl.CULL_FACE)
        projection = projection_from_intrinsics(K, width, height, self.near, self.far)
        direction = np.asarray(lighting.direction, np.float64)
        self.program["u_projection"].write(projection.T.astype("f4").tobytes())
        self.program["u_light_direction"].value = tuple(direction / np.linalg.norm(direction))
        self.program["u_light_colour"].value = tuple(float(c) for c in lighting.colour)
        self.program["u_ambient"].value = float(lighting.ambient)
        self.program["u_texture"].value = 0
        for index, (handle, T_cam_obj) in enumerate(instances):
            vao, _, texture, specular = self._models[handle]
            self.program["u_cam_obj"].write(np.asarray(T_cam_obj, np.float64).T.astype("f4").tobytes())
            self.program["u_specular"].value = specular
            self.program["u_instance"].value = float(index + 1)
            texture.use(0)
            vao.render(self._gl.TRIANGLES)

    def render(
        self,
        K: np.ndarray,
        instances: Sequence[tuple[int, np.ndarray]],
        lighting: Lighting | None = None,
        background: np.ndarray | None = None,
    ) -> RenderedView:
        """Render ``instances`` (model handle, 4x4 T_cam_obj) over ``background`` (uint8 (H, W, 3), black if None).

        Instance k of the list gets id k + 1 in ``instance_ids``.
        """
        K = np.asarray(K, np.float64)
        if K.shape != (3, 3):
            raise ValueError(f"K must be a 3x3 intrinsics matrix, got shape {K.shape}")
        if len(instances) > 254:
            raise ValueError(f"at most 254 instances per render, got {len(instances)}")
        lighting = lighting or Lighting()
        w, h, s = self.width, self.height, self.supersample
        self._draw(self._data_fbo, K, w, h, instances, lighting)
        depth_id = np.frombuffer(self._data_fbo.read(components=2, attachment=1, dtype="f4"), np.float32)
        depth_id = np.flipud(depth_id.reshape(h, w, 2))
        if s > 1:
            self._draw(self._colour_fbo, supersampled_intrinsics(K, s), w * s, h * s, instances, lighting)
        colour = np.frombuffer(self._colour_fbo.read(components=4, attachment=0), np.uint8)
        colour = np.flipud(colour.reshape(h * s, w * s, 4))
        if s > 1:  # INTER_AREA with an integer factor is the exact box filter; alpha becomes the coverage
            colour = cv2.resize(colour, (w, h), interpolation=cv2.INTER_AREA)
        colour = colour.astype(np.float32)
        if background is not None:
            if background.shape != (h, w, 3):
                raise ValueError(f"background must be ({h}, {w}, 3) uint8, got {background.shape}")
            colour[..., :3] += background.astype(np.float32) * (1.0 - colour[..., 3:] / 255.0)
        rgb = np.clip(np.rint(colour[..., :3]), 0, 255).astype(np.uint8)
        return RenderedView(rgb, np.ascontiguousarray(depth_id[..., 0]), np.rint(depth_id[..., 1]).astype(np.uint8))

    def release(self) -> None:
        """Free the GL objects of this rasterizer (the shared context stays)."""
        for resource in reversed(self._resources):
            resource.release()
        self.program.release()
        self._resources, self._models = [], []

    def __enter__(self) -> MeshRasterizer:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
